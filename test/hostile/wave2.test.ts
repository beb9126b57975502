import { expect } from 'chai';
import { fixtureEndpoint, useDevicePki } from '../support/device-pki.js';
import { waitFor } from '../support/concurrency.js';
import { newDevice } from '../support/device-client.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import {
  connectDevice,
  connectPacket,
  rawConnection,
  remainingLength,
  waitForBytes,
} from '../support/mqtt-client.js';

/**
 * Regressions for what the adversarial review of the wave 2 features (owner
 * confirmation, MQTT, shared node state) found; see
 * docs/security-review-2026-12.md, "Wave 2 features".
 */
describe('wave 2 review findings', function () {
  this.timeout(60_000);
  const fx = useFixture({
    FLEETGATE_MQTT_PORT: '0',
    FLEETGATE_MQTT_MAX_PAYLOAD_BYTES: '4096',
    FLEETGATE_MQTT_REVOCATION_POLL_MS: '100',
    // A silent client is not closed for this long: only the packet limit can end these connections.
    FLEETGATE_FIRST_REQUEST_TIMEOUT_MS: '3600000',
  });
  const ca = useDevicePki(fixtureEndpoint(() => fx().server));

  /** A fixed header declaring `length` bytes of packet body. */
  function header(first: number, length: number): Buffer {
    return Buffer.concat([Buffer.from([first]), remainingLength(length)]);
  }

  /** Writes `megabytes` of filler, stopping early when the server closed the connection. */
  async function fill(socket: import('node:tls').TLSSocket, megabytes: number): Promise<void> {
    const chunk = Buffer.alloc(1024 * 1024, 0x41);
    for (let i = 0; i < megabytes && !socket.destroyed && socket.writable; i += 1) {
      if (!socket.write(chunk)) {
        await new Promise<void>((resolve) => {
          socket.once('drain', resolve);
          socket.once('close', resolve);
        });
      }
    }
  }

  it('MQTT: closes a connection whose CONNECT declares 64 MB, before authenticating anything', async () => {
    // Any TLS client (a fresh self-signed certificate, bound to nothing) could make
    // the node buffer up to 256 MB per connection before CONNECT was even read.
    const conn = await rawConnection(fx(), newDevice());
    conn.socket.write(header(0x10, 64 * 1024 * 1024));
    void fill(conn.socket, 8);
    await conn.closed;
    expect(conn.received().length, 'no CONNACK').to.equal(0);
    await waitFor('the refusal in the log', () =>
      fx().server.output().includes('MQTT packet too large'),
    );
  });

  it('MQTT: closes a device connection whose PUBLISH declares more than the payload limit', async () => {
    const { device } = await fx().boundDevice(uniqueName('mqtt-big'));
    const conn = await rawConnection(fx(), device);
    conn.socket.write(connectPacket('big-publisher'));
    expect([...(await waitForBytes(conn, 4))]).to.deep.equal([0x20, 2, 0, 0]);
    conn.socket.write(header(0x30, 64 * 1024 * 1024));
    void fill(conn.socket, 8);
    await conn.closed;
    await waitFor('the refusal in the log', () =>
      fx().server.output().includes('"declared":67108864'),
    );
  });

  it('MQTT: disconnects a CA-enrolled device once its CA’s CRL revokes its certificate', async () => {
    // Requests re-check the certificate, but the open session stayed subscribed to the
    // device's name topics, where the RES of whichever certificate holds the name arrive.
    const { identity, root } = await ca.trustedRoot('crl-mqtt');
    const device = `${identity}-dev`;
    ca.pki.issue(device, root, { cn: 'sensor-crl' });
    const enrolled = await ca.enroll(device, []);
    expect(enrolled.status, enrolled.text).to.equal(200);

    const enrolledPems = ca.pems(device);
    const client = await connectDevice(fx(), enrolledPems);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const granted = await client.subscribeAsync(`${identity}/res/sensor-crl/+`, { qos: 1 });
    expect(granted.map((g) => g.qos)).to.deep.equal([1]);

    ca.pki.revoke(device, root);
    await ca.ok(['ca', 'crl', identity, ca.pki.crl(root)]);
    await closed;
    const again = await connectDevice(fx(), enrolledPems).then(
      (c) => (c.end(true), null),
      (e: Error & { code?: number }) => e,
    );
    expect(again?.code, 'refused at CONNECT').to.equal(5);
  });
});
