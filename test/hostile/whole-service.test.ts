import { expect } from 'chai';
import WebSocket from 'ws';
import type { TestDevice } from '../support/device-client.js';
import { useFixture, uniqueName, type Fixture } from '../support/fixture.js';
import { countStoredPoints } from '../support/stored-points.js';

const T0 = 1_764_500_000_000;
const FIRST_REQUEST_MS = 400;

function openSocket(fx: Fixture, device: TestDevice): Promise<WebSocket> {
  const ws = new WebSocket(`${fx.server.baseUrl.replace(/^https/, 'wss')}/device_endpoint/ws`, {
    ca: fx.server.caPem,
    cert: device.certPem,
    key: device.keyPem,
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/**
 * Findings of the whole-service adversarial review (docs/security-review-2026-12.md):
 * each case failed on main before its fix.
 */
describe('whole-service review: the WebSocket outlives the first-request timeout', () => {
  const fx = useFixture({
    FLEETGATE_FIRST_REQUEST_TIMEOUT_MS: String(FIRST_REQUEST_MS),
    FLEETGATE_WS_PING_INTERVAL_MS: '60000',
  });

  it('keeps an open socket past FLEETGATE_FIRST_REQUEST_TIMEOUT_MS and still acknowledges', async () => {
    const { device } = await fx().boundDevice(uniqueName('ws-idle'));
    const ws = await openSocket(fx(), device);
    const events: string[] = [];
    ws.on('error', (err) => events.push(`error: ${err.message}`));
    ws.on('close', (code) => events.push(`close ${code}`));
    try {
      // Before the fix the first-request timer wrote "HTTP/1.1 408 ..." into the
      // upgraded socket (a broken frame) and closed it after this delay.
      await new Promise((resolve) => setTimeout(resolve, FIRST_REQUEST_MS * 4));
      expect(events).to.deep.equal([]);
      const ack = await new Promise<Record<string, unknown>>((resolve, reject) => {
        ws.once('message', (data) => resolve(JSON.parse(String(data))));
        ws.once('close', () => reject(new Error(`closed: ${events.join(', ')}`)));
        ws.send(JSON.stringify({ type: 'message', id: 'late', ts: T0, data: { idle: 1 } }));
      });
      expect(ack).to.deep.equal({ type: 'ack', id: 'late', stored: 1, duplicates: 0 });
      expect(await countStoredPoints(fx().db, fx().server, device, ['idle'])).to.equal(1);
    } finally {
      ws.terminate();
    }
  });
});
