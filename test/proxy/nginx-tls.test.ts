import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { newDevice } from '../support/device-client.js';
import { startFleetgate } from '../support/fleetgate-process.js';
import {
  skipUnlessNginx,
  startBehindNginx,
  type ProxiedFleetgate,
} from '../support/nginx-front.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';

/** Runs `openssl s_client` against nginx, feeding `input`, and returns everything it printed. */
function sClient(port: number, args: string[], input = ''): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args]);
    let output = '';
    child.stdout.on('data', (chunk) => (output += String(chunk)));
    child.stderr.on('data', (chunk) => (output += String(chunk)));
    // s_client acts on stdin lines ("R" renegotiates) and exits when stdin ends.
    child.stdin.end(input);
    child.on('close', () => resolve(output));
  });
}

describe('behind nginx: the public TLS front', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let front: ProxiedFleetgate;
  let certArgs: string[];

  before(async function () {
    skipUnlessNginx(this);
    db = await createTestDatabase();
    front = await startBehindNginx((env) => startFleetgate(db, env), db.workDir);
    const device = newDevice();
    fs.writeFileSync(path.join(db.workDir, 'd.crt'), device.certPem);
    fs.writeFileSync(path.join(db.workDir, 'd.key'), device.keyPem);
    certArgs = ['-cert', path.join(db.workDir, 'd.crt'), '-key', path.join(db.workDir, 'd.key')];
  });
  after(async () => {
    await front?.stop();
    await db?.drop();
  });

  it('speaks TLS 1.2 and 1.3 only', async () => {
    const ca = ['-CAfile', front.nginx.caPath];
    expect(await sClient(front.nginx.port, ['-tls1_3', ...ca])).to.match(
      /New, TLSv1\.3, Cipher is TLS_/,
    );
    expect(await sClient(front.nginx.port, ['-tls1_2', ...ca])).to.match(
      /New, TLSv1\.2, Cipher is ECDHE-/,
    );
    for (const old of ['-tls1', '-tls1_1']) {
      const output = await sClient(front.nginx.port, [old, '-cipher', 'DEFAULT@SECLEVEL=0', ...ca]);
      expect(output, old).to.match(/Cipher is \(NONE\)/);
    }
  });

  it('refuses TLS 1.2 ciphers without forward secrecy or AEAD', async () => {
    for (const cipher of ['AES128-SHA', 'AES256-GCM-SHA384', 'ECDHE-RSA-AES128-SHA']) {
      const output = await sClient(front.nginx.port, ['-tls1_2', '-cipher', cipher]);
      expect(output, cipher).to.match(/Cipher is \(NONE\)/);
    }
  });

  it('refuses client-initiated renegotiation', async () => {
    const output = await sClient(front.nginx.port, ['-tls1_2', ...certArgs], 'R\n');
    expect(output).to.include('RENEGOTIATING');
    expect(output).to.match(/no renegotiation/);
  });
});
