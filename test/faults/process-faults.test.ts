import net from 'node:net';
import { expect } from 'chai';
import { Agent, request } from 'undici';
import {
  buildMultipart,
  DeviceClient,
  newDevice,
  type TestDevice,
} from '../support/device-client.js';
import { startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import { bindDevice, storedPoints } from '../support/stored-points.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';

const lines = (start: number, n: number) =>
  Array.from({ length: n }, (_, i) => `${start + i},${i}`).join('\n') + '\n';

/**
 * A TCP relay that passes both directions through until the client has sent
 * `cutAfterBytes` (the handshake is done and the whole body is on its way); the
 * next bytes from the server (its answer, sent after COMMIT) are dropped and
 * both sides cut: the upload is committed, the client never reads its 200.
 */
async function cuttingRelay(
  targetPort: number,
  cutAfterBytes: number,
): Promise<{ port: number; close(): void }> {
  const relay = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    let sent = 0;
    client.on('data', (chunk: Buffer) => {
      sent += chunk.length;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (sent < cutAfterBytes) {
        client.write(chunk);
        return;
      }
      client.destroy();
      upstream.destroy();
    });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  // Port 0: the OS picks a free port, read back once listening (no window for a collision).
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', () => resolve()));
  const { port } = relay.address() as net.AddressInfo;
  return { port, close: () => relay.close() };
}

describe('faults: fleetgate killed or cut off after committing', function () {
  this.timeout(180_000);
  let db: TestDatabase;
  let server: FleetgateProcess;
  let device: TestDevice;

  before(async () => {
    db = await createTestDatabase({ migrated: true });
    server = await startFleetgate(db, { FLEETGATE_UPLOADS_PER_DEVICE: '0' });
    device = newDevice();
    const client = new DeviceClient(server, device);
    await bindDevice(server, client);
    await client.close();
  });
  after(async () => {
    await server?.stop();
    await db?.drop();
  });

  it('keeps every point of an upload answered 200 when the server is SIGKILLed right after', async () => {
    const start = Date.now() - 3600_000;
    for (let round = 0; round < 3; round++) {
      const client = new DeviceClient(server, device);
      const answer = await client.upload([
        { name: `killed${round}`, content: lines(start, 20_000) },
      ]);
      server.child.kill('SIGKILL');
      expect(answer.status, answer.text).to.equal(200);
      await new Promise((resolve) => server.child.once('exit', resolve));
      await client.close().catch(() => undefined);
      server = await startFleetgate(db, { FLEETGATE_UPLOADS_PER_DEVICE: '0' });
      expect(await storedPoints(db, server, device, `killed${round}`)).to.have.length(20_000);
    }
  });

  it('stores nothing twice when the connection is cut after COMMIT and the client retries', async () => {
    const start = Date.now() - 7200_000;
    const content = lines(start, 10_000);
    const relay = await cuttingRelay(server.port, content.length);
    try {
      // TLS 1.2: no post-handshake messages (1.3 session tickets), so the first
      // server bytes after the body are the answer, written after COMMIT.
      const agent = new Agent({
        connect: {
          ca: server.caPem,
          servername: 'localhost',
          cert: device.certPem,
          key: device.keyPem,
          maxVersion: 'TLSv1.2',
        },
      });
      const { body, contentType } = buildMultipart([{ name: 'cut', content }]);
      const cut = await request(`https://localhost:${relay.port}/device_endpoint`, {
        method: 'POST',
        body,
        headers: { 'content-type': contentType },
        dispatcher: agent,
      }).then(
        (answer) => answer.statusCode,
        (err: Error) => err.message,
      );
      expect(cut, 'the client must not have seen an answer').to.not.be.a('number');
      await agent.close().catch(() => undefined);
    } finally {
      relay.close();
    }
    // The server committed, then answered 200; the client never read it.
    expect(await storedPoints(db, server, device, 'cut')).to.have.length(10_000);
    const direct = new DeviceClient(server, device);
    const retry = await direct.upload([{ name: 'cut', content }]);
    await direct.close();
    expect(retry.status, retry.text).to.equal(200);
    expect(retry.json).to.deep.include({ stored: 0, duplicates: 10_000 });
    const stored = await storedPoints(db, server, device, 'cut');
    expect(stored).to.have.length(10_000);
    expect(new Set(stored.map(([ts]) => ts)).size).to.equal(10_000);
  });
});
