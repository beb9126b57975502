import { expect } from 'chai';
import WebSocket from 'ws';
import { DeviceClient, newDevice } from '../support/device-client.js';
import { useFleetgateBehindNginx } from '../support/nginx-suite.js';
import { openWatchedSocket } from '../support/websocket-client.js';

/** Issue 13: the WebSocket channel through nginx with the shipped template (proxy mode). */
describe('WebSocket channel behind nginx', function () {
  this.timeout(120_000);
  const front = useFleetgateBehindNginx();

  it('authenticates by the forwarded certificate, acks after commit and closes on revocation', async () => {
    expect((await front.app.cli(['identity', 'create', 'acme'])).code).to.equal(0);
    const psk = (await front.app.cli(['psk', 'issue', 'acme'])).stdout.trim();
    const device = newDevice();
    const client = new DeviceClient(front.nginx, device);
    expect((await client.bind(psk)).status).to.equal(200);
    await client.close();

    const { socket: ws, closed: closing } = await openWatchedSocket(front.nginx, device);
    const closed = closing.then(({ code }) => code);
    const frames: string[] = [];
    const next = () =>
      new Promise<string>((resolve) => ws.once('message', (data) => resolve(String(data))));
    const ack = next();
    ws.send(JSON.stringify({ type: 'message', id: 'n-1', ts: 1764500000000, data: { t: 1 } }));
    frames.push(await ack);
    expect(JSON.parse(frames[0]!)).to.deep.equal({
      type: 'ack',
      id: 'n-1',
      stored: 1,
      duplicates: 0,
    });
    expect((await front.app.cli(['device', 'revoke', device.fingerprint])).code).to.equal(0);
    const code = await Promise.race([
      closed,
      new Promise<string>((resolve) => setTimeout(() => resolve('still open'), 3000)),
    ]);
    expect(code).to.equal(1008);
  });

  it('gives a WebSocket without a client certificate 401 through nginx', async () => {
    const ws = new WebSocket(`${front.nginx.baseUrl.replace(/^https/, 'wss')}/device_endpoint/ws`, {
      ca: front.nginx.caPem,
    });
    const status = await new Promise<number>((resolve, reject) => {
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.once('open', () => reject(new Error('accepted')));
      ws.once('error', reject);
    });
    expect(status).to.equal(401);
  });
});
