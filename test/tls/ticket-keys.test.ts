/**
 * Session ticket keys rotate on a schedule, and the previous key still
 * decrypts (issue 9, section 5): a device that slept across one rotation
 * resumes, one that slept across two does a full handshake. Real TLS: an
 * in-process fleetgate HTTPS listener and Node TLS clients.
 */
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { expect } from 'chai';
import pino from 'pino';
import { loadConfig } from '../../src/config/config.js';
import {
  enableResumption,
  httpsOptions,
  loadServerTlsMaterial,
  type Resumption,
} from '../../src/server/tls-options.js';
import { rotateTicketKeyDir, readTicketKeyDir } from '../../src/tls/ticket-keys.js';
import { createSelfSignedDeviceCertificate } from '../../src/tls/dev-certificates.js';

const log = pino({ level: 'silent' });
const device = createSelfSignedDeviceCertificate();

interface Handshake {
  reused: boolean;
  session: Buffer;
  /** The ticket's key name (its first 16 bytes, RFC 5077 section 4). */
  keyName: string;
}

function handshake(port: number, ca: string, session?: Buffer): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    let newSession: Buffer | undefined;
    const socket = tls.connect({
      port,
      host: '127.0.0.1',
      servername: 'localhost',
      ca,
      cert: device.certPem,
      key: device.keyPem,
      maxVersion: 'TLSv1.2',
      ...(session ? { session } : {}),
    });
    socket.on('session', (data: Buffer) => (newSession = data));
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      socket.write('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    });
    socket.on('data', () => {});
    socket.once('end', () => {
      const ticket = socket.getTLSTicket();
      resolve({
        reused: socket.isSessionReused(),
        session: newSession ?? session!,
        keyName: ticket ? ticket.subarray(0, 16).toString('hex') : '',
      });
    });
  });
}

async function startServer(env: Record<string, string>, keyDirCheckMs = 10_000) {
  const certsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-ticket-'));
  const config = loadConfig({ FLEETGATE_CERTS_DIR: certsDir, ...env });
  const server = https.createServer(
    httpsOptions(loadServerTlsMaterial(config, log), config),
    (_req, res) => res.end('ok'),
  );
  const resumption: Resumption = enableResumption(server, config, log, undefined, keyDirCheckMs);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    ca: fs.readFileSync(path.join(certsDir, 'dev-ca.crt'), 'utf8'),
    resumption,
    certsDir,
    stop: async () => {
      resumption.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(certsDir, { recursive: true, force: true });
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('TLS session tickets: rotating keys', function () {
  this.timeout(60_000);

  it('rotates on its schedule; a ticket survives one rotation, not two', async () => {
    // The session cache is off, so only a ticket can resume.
    const server = await startServer({
      FLEETGATE_TLS_SESSION_CACHE_SIZE: '0',
      FLEETGATE_TLS_TICKET_KEY_ROTATION_SECONDS: '2',
    });
    try {
      const first = await handshake(server.port, server.ca);
      expect(first.reused).to.equal(false);
      expect(first.keyName).to.have.length(32);
      const again = await handshake(server.port, server.ca, first.session);
      expect(again.reused, 'resumed by ticket before any rotation').to.equal(true);
      expect(again.keyName).to.equal(first.keyName);

      await sleep(2_500); // one rotation: the ticket's key is now the previous one
      const afterOne = await handshake(server.port, server.ca, first.session);
      expect(afterOne.reused, 'the previous key still decrypts').to.equal(true);
      expect(afterOne.keyName, 'a renewed ticket under the new key').to.not.equal(first.keyName);

      await sleep(2_000); // a second rotation: the first key is gone
      const afterTwo = await handshake(server.port, server.ca, first.session);
      expect(afterTwo.reused, 'a ticket two rotations old is not accepted').to.equal(false);
    } finally {
      await server.stop();
    }
  });

  it('reads shared keys from FLEETGATE_TLS_TICKET_KEY_DIR and follows its rotation', async () => {
    const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-ticket-keys-'));
    rotateTicketKeyDir(keyDir);
    const server = await startServer(
      { FLEETGATE_TLS_SESSION_CACHE_SIZE: '0', FLEETGATE_TLS_TICKET_KEY_DIR: keyDir },
      100,
    );
    try {
      const keyName = (file: 'current' | 'previous') =>
        readTicketKeyDir(keyDir)[file]?.name.toString('hex');
      const first = await handshake(server.port, server.ca);
      expect(first.keyName, 'tickets are encrypted with current.key').to.equal(keyName('current'));
      expect(fs.statSync(path.join(keyDir, 'current.key')).mode & 0o777).to.equal(0o600);

      expect(rotateTicketKeyDir(keyDir)).to.deep.equal({ rotated: true });
      expect(keyName('previous')).to.equal(first.keyName);
      await sleep(400);
      const resumed = await handshake(server.port, server.ca, first.session);
      expect(resumed.reused, 'previous.key still decrypts').to.equal(true);
      expect(resumed.keyName).to.equal(keyName('current'));

      rotateTicketKeyDir(keyDir);
      await sleep(400);
      const stale = await handshake(server.port, server.ca, first.session);
      expect(stale.reused).to.equal(false);
    } finally {
      await server.stop();
      fs.rmSync(keyDir, { recursive: true, force: true });
    }
  });

  it('FLEETGATE_TLS_TICKETS=off issues no tickets', async () => {
    const server = await startServer({
      FLEETGATE_TLS_TICKETS: 'off',
      FLEETGATE_TLS_SESSION_CACHE_SIZE: '0',
    });
    try {
      const first = await handshake(server.port, server.ca);
      expect(first.keyName).to.equal('');
      const again = await handshake(server.port, server.ca, first.session);
      expect(again.reused).to.equal(false);
    } finally {
      await server.stop();
    }
  });
});
