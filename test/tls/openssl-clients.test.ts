/**
 * The device TLS policy seen by `openssl s_client` and by Python's standard
 * library: which certificate (ECDSA or RSA) the server presents, CCM suites,
 * CBC only on opt-in, resumption by session ID and by ticket (-sess_out /
 * -sess_in), and ALPN offers fleetgate does not speak.
 */
import { skipBecause } from '../support/skip.js';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { REPO_ROOT, startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';
import { factoryDevice } from './device-stacks.js';
import { sClient } from '../support/openssl-client.js';

describe('device TLS policy: openssl s_client and Python clients', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let server: FleetgateProcess;
  let ca: string[];
  let device: ReturnType<typeof factoryDevice>;
  let auth: string[];

  before(async () => {
    db = await createTestDatabase({ migrated: true });
    server = await startFleetgate(db);
    ca = ['-CAfile', path.join(db.env.FLEETGATE_CERTS_DIR!, 'dev-ca.crt'), '-verify_return_error'];
    device = factoryDevice('ec', db.workDir, 'openssl-device');
    auth = ['-cert', device.certPath, '-key', device.keyPath];
  });
  after(async () => {
    await server?.stop();
    await db?.drop();
  });

  it('presents the ECDSA P-256 certificate to ECDSA-only clients and the RSA one to RSA-only clients', async () => {
    const ecdsa = await sClient(server.port, [
      '-tls1_2',
      '-cipher',
      'ECDHE-ECDSA-AES128-GCM-SHA256',
      ...ca,
      ...auth,
    ]);
    expect(ecdsa).to.match(/New, TLSv1\.2, Cipher is ECDHE-ECDSA-AES128-GCM-SHA256/);
    expect(ecdsa).to.match(/Server public key is 256 bit/);
    expect(ecdsa).to.match(/Verify return code: 0 \(ok\)/);
    expect(ecdsa).to.match(/HTTP\/1\.1 200 OK/);
    const rsa = await sClient(server.port, [
      '-tls1_2',
      '-cipher',
      'ECDHE-RSA-AES128-GCM-SHA256',
      ...ca,
      ...auth,
    ]);
    expect(rsa).to.match(/Cipher is ECDHE-RSA-AES128-GCM-SHA256/);
    expect(rsa).to.match(/Server public key is 2048 bit/);
    const rsa13 = await sClient(server.port, ['-tls1_3', '-sigalgs', 'rsa_pss_rsae_sha256', ...ca]);
    expect(rsa13).to.match(/Server public key is 2048 bit/);
    const ecdsa13 = await sClient(server.port, [
      '-tls1_3',
      '-sigalgs',
      'ecdsa_secp256r1_sha256',
      ...ca,
    ]);
    expect(ecdsa13).to.match(/Server public key is 256 bit/);
  });

  it('offers the CCM suites in TLS 1.2 and 1.3', async () => {
    for (const cipher of ['ECDHE-ECDSA-AES128-CCM', 'ECDHE-ECDSA-AES128-CCM8']) {
      const output = await sClient(server.port, ['-tls1_2', '-cipher', cipher, ...ca, ...auth]);
      expect(output, cipher).to.include(`Cipher is ${cipher}`);
      expect(output, cipher).to.match(/HTTP\/1\.1 200 OK/);
    }
    for (const suite of ['TLS_AES_128_CCM_SHA256', 'TLS_AES_128_CCM_8_SHA256']) {
      const output = await sClient(server.port, [
        '-tls1_3',
        '-ciphersuites',
        suite,
        ...ca,
        ...auth,
      ]);
      expect(output, suite).to.include(`New, TLSv1.3, Cipher is ${suite}`);
      expect(output, suite).to.match(/HTTP\/1\.1 200 OK/);
    }
  });

  it('offers no CBC suite by default', async () => {
    for (const cipher of ['ECDHE-ECDSA-AES128-SHA256', 'ECDHE-RSA-AES128-SHA', 'AES128-CCM']) {
      const output = await sClient(server.port, ['-tls1_2', '-cipher', cipher, ...ca]);
      expect(output, cipher).to.match(/Cipher is \(NONE\)/);
    }
  });

  it('resumes by session ID with tickets off (-no_ticket, -sess_out/-sess_in)', async () => {
    const file = path.join(db.workDir, 'session-id.pem');
    const first = await sClient(server.port, [
      '-tls1_2',
      '-no_ticket',
      '-sess_out',
      file,
      ...ca,
      ...auth,
    ]);
    expect(first).to.match(/New, TLSv1\.2/);
    expect(first).to.not.match(/TLS session ticket:/);
    const second = await sClient(server.port, ['-tls1_2', '-no_ticket', '-sess_in', file, ...ca]);
    expect(second).to.match(/Reused, TLSv1\.2/);
    // The resumed session still carries the device certificate: fleetgate knows it.
    expect(second).to.match(/HTTP\/1\.1 200 OK/);
    expect(second).to.include(`"fingerprint":"${device.fingerprint}"`);
  });

  for (const version of ['-tls1_2', '-tls1_3']) {
    it(`resumes by ticket (${version})`, async () => {
      const file = path.join(db.workDir, `ticket${version}.pem`);
      const first = await sClient(server.port, [version, '-sess_out', file, ...ca, ...auth]);
      expect(first).to.match(/TLS session ticket lifetime hint: 3600/);
      const second = await sClient(server.port, [version, '-sess_in', file, ...ca]);
      expect(second).to.match(/Reused, TLSv1\.[23]/);
      expect(second).to.include(`"fingerprint":"${device.fingerprint}"`);
    });
  }

  for (const alpn of ['h2', 'http/1.0', 'h2,http/1.0']) {
    it(`answers a client offering only ALPN "${alpn}" with HTTP/1.1 (no alert 120)`, async () => {
      const output = await sClient(server.port, ['-alpn', alpn, ...ca, ...auth]);
      expect(output).to.not.match(/alert|no application protocol/i);
      expect(output).to.match(/No ALPN negotiated/);
      expect(output).to.match(/HTTP\/1\.1 200 OK/);
    });
  }

  it('a Python standard-library device uploads and resumes', async function () {
    const python = await new Promise<boolean>((resolve) =>
      execFile('python3', ['--version'], (err) => resolve(!err)),
    );
    if (!python) skipBecause(this, 'python3 is not installed');
    const now = Date.now();
    const output = await new Promise<string>((resolve, reject) =>
      execFile(
        'python3',
        [
          path.join(REPO_ROOT, 'test', 'tls', 'clients', 'python_client.py'),
          String(server.port),
          path.join(db.env.FLEETGATE_CERTS_DIR!, 'dev-ca.crt'),
          device.certPath,
          device.keyPath,
          'STATUS',
          `UPLOAD:humidity:${now - 1000},40.5;${now},41`,
        ],
        (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout)),
      ),
    );
    const [status, upload] = output
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(status.status).to.equal(200);
    expect(status.resumed).to.equal(false);
    expect(upload.resumed).to.equal(true);
    // Not bound: fleetgate knows the device on the resumed session and refuses with 403.
    expect(upload.status).to.equal(403);
    expect(JSON.parse(upload.body)).to.include({ code: 'certificate_not_bound' });
  });
});

describe('device TLS policy: options', function () {
  this.timeout(120_000);
  let db: TestDatabase;

  before(async () => {
    db = await createTestDatabase({ migrated: true });
  });
  after(async () => db?.drop());

  it('FLEETGATE_TLS_PROFILE=legacy-cbc adds ECDHE CBC suites', async () => {
    const server = await startFleetgate(db, { FLEETGATE_TLS_PROFILE: 'legacy-cbc' });
    try {
      const ca = ['-CAfile', path.join(db.env.FLEETGATE_CERTS_DIR!, 'dev-ca.crt')];
      const output = await sClient(server.port, [
        '-tls1_2',
        '-cipher',
        'ECDHE-ECDSA-AES128-SHA256',
        ...ca,
      ]);
      expect(output).to.include('Cipher is ECDHE-ECDSA-AES128-SHA256');
      const plainRsa = await sClient(server.port, ['-tls1_2', '-cipher', 'AES128-SHA256', ...ca]);
      expect(plainRsa, 'still no suite without forward secrecy').to.match(/Cipher is \(NONE\)/);
    } finally {
      await server.stop();
    }
  });

  it('rotates ticket keys on schedule and keeps the previous one (issue 9)', async () => {
    const server = await startFleetgate(db, {
      FLEETGATE_TLS_SESSION_CACHE_SIZE: '0',
      FLEETGATE_TLS_TICKET_KEY_ROTATION_SECONDS: '2',
    });
    try {
      const ca = ['-CAfile', path.join(db.env.FLEETGATE_CERTS_DIR!, 'dev-ca.crt')];
      const keyName = (output: string) =>
        /TLS session ticket:\n\s*0000 - ((?:[0-9a-f]{2}[ -]+){16})/
          .exec(output)?.[1]
          ?.replace(/[ -]/g, '');
      const first = path.join(db.workDir, 'rotating-1.pem');
      const second = path.join(db.workDir, 'rotating-2.pem');
      const issued = await sClient(server.port, ['-tls1_2', '-sess_out', first, ...ca]);
      expect(keyName(issued)).to.have.length(32);
      await new Promise((resolve) => setTimeout(resolve, 2_600));
      const resumed = await sClient(server.port, [
        '-tls1_2',
        '-sess_in',
        first,
        '-sess_out',
        second,
        ...ca,
      ]);
      expect(resumed, 'a ticket one rotation old still resumes').to.match(/Reused, TLSv1\.2/);
      expect(keyName(resumed), 'and is renewed under the new key').to.not.equal(keyName(issued));
    } finally {
      await server.stop();
    }
  });

  it('FLEETGATE_TLS_CIPHERS replaces the TLS 1.2 list; a list OpenSSL refuses stops the start', async () => {
    const server = await startFleetgate(db, {
      FLEETGATE_TLS_CIPHERS: 'ECDHE-ECDSA-AES128-CCM8',
    });
    try {
      const gcm = await sClient(server.port, [
        '-tls1_2',
        '-cipher',
        'ECDHE-ECDSA-AES128-GCM-SHA256',
      ]);
      expect(gcm).to.match(/Cipher is \(NONE\)/);
      const ccm8 = await sClient(server.port, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-CCM8']);
      expect(ccm8).to.include('Cipher is ECDHE-ECDSA-AES128-CCM8');
    } finally {
      await server.stop();
    }
    let failure = '';
    await startFleetgate(db, { FLEETGATE_TLS_CIPHERS: 'NO-SUCH-CIPHER' }).then(
      (started) => started.stop(),
      (err: Error) => (failure = err.message),
    );
    expect(failure).to.include('FLEETGATE_TLS_CIPHERS');
    expect(fs.existsSync(db.workDir)).to.equal(true);
  });
});
