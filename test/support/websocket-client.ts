import WebSocket from 'ws';
import type { TestDevice } from './device-client.js';
import type { Fixture } from './fixture.js';

/** A device's WebSocket to the fixture's server (`/device_endpoint/ws`), open. */
export function openSocket(fx: Fixture, device: TestDevice): Promise<WebSocket> {
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
