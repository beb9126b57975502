import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { newDevice } from '../support/device-client.js';
import { useFleetgateBehindNginx } from '../support/nginx-suite.js';

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
  const front = useFleetgateBehindNginx();
  let certArgs: string[];

  before(() => {
    const device = newDevice();
    const dir = front.db.workDir;
    fs.writeFileSync(path.join(dir, 'd.crt'), device.certPem);
    fs.writeFileSync(path.join(dir, 'd.key'), device.keyPem);
    certArgs = ['-cert', path.join(dir, 'd.crt'), '-key', path.join(dir, 'd.key')];
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

  it('presents the ECDSA or the RSA certificate and offers the CCM suites, as direct mode does', async () => {
    const ca = ['-CAfile', front.nginx.caPath, '-verify_return_error'];
    const ecdsa = await sClient(front.nginx.port, [
      '-tls1_2',
      '-cipher',
      'ECDHE-ECDSA-AES128-CCM8',
      ...ca,
    ]);
    expect(ecdsa).to.include('Cipher is ECDHE-ECDSA-AES128-CCM8');
    expect(ecdsa).to.match(/Server public key is 256 bit/);
    const rsa = await sClient(front.nginx.port, [
      '-tls1_2',
      '-cipher',
      'ECDHE-RSA-AES128-GCM-SHA256',
      ...ca,
    ]);
    expect(rsa).to.match(/Server public key is 2048 bit/);
    for (const suite of ['TLS_AES_128_CCM_SHA256', 'TLS_AES_128_CCM_8_SHA256']) {
      const output = await sClient(front.nginx.port, ['-tls1_3', '-ciphersuites', suite, ...ca]);
      expect(output, suite).to.include(`New, TLSv1.3, Cipher is ${suite}`);
    }
  });

  it('resumes by session ID and by ticket; tickets are encrypted with the shared current key', async () => {
    const ca = ['-CAfile', front.nginx.caPath];
    const idFile = path.join(front.db.workDir, 'nginx-session-id.pem');
    await sClient(front.nginx.port, [
      '-tls1_2',
      '-no_ticket',
      '-sess_out',
      idFile,
      ...ca,
      ...certArgs,
    ]);
    const byId = await sClient(front.nginx.port, [
      '-tls1_2',
      '-no_ticket',
      '-sess_in',
      idFile,
      ...ca,
    ]);
    expect(byId).to.match(/Reused, TLSv1\.2/);
    const ticketFile = path.join(front.db.workDir, 'nginx-ticket.pem');
    const first = await sClient(front.nginx.port, ['-tls1_2', '-sess_out', ticketFile, ...ca]);
    const ticketStart = /TLS session ticket:\n\s*0000 - ((?:[0-9a-f]{2}[ -]+){16})/.exec(
      first,
    )?.[1];
    const currentKey = fs.readFileSync(
      path.join(front.app.env.FLEETGATE_CERTS_DIR!, 'ticket-keys', 'current.key'),
    );
    expect(ticketStart?.replace(/[ -]/g, '')).to.equal(currentKey.subarray(0, 16).toString('hex'));
    const byTicket = await sClient(front.nginx.port, ['-tls1_2', '-sess_in', ticketFile, ...ca]);
    expect(byTicket).to.match(/Reused, TLSv1\.2/);
  });

  it('ALPN: http/1.0 alone is served; h2 alone is refused by nginx itself (documented)', async () => {
    const ca = ['-CAfile', front.nginx.caPath];
    const request = 'GET /device_endpoint HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';
    const http10 = await sClient(
      front.nginx.port,
      ['-alpn', 'http/1.0', '-ign_eof', ...ca, ...certArgs],
      request,
    );
    expect(http10).to.match(/ALPN protocol: http\/1\.0/);
    expect(http10).to.match(/HTTP\/1\.1 200 OK/);
    // nginx (1.21.4 and later) answers an ALPN list without a protocol it speaks
    // with alert 120 and has no setting to carry on; direct mode does carry on.
    const h2 = await sClient(front.nginx.port, ['-alpn', 'h2', ...ca], request);
    expect(h2).to.match(/no application protocol|alert number 120/);
  });

  it('refuses client-initiated renegotiation', async () => {
    const output = await sClient(front.nginx.port, ['-tls1_2', ...certArgs], 'R\n');
    expect(output).to.include('RENEGOTIATING');
    expect(output).to.match(/no renegotiation/);
  });
});
