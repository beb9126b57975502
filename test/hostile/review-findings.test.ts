import { expect } from 'chai';
import { toHttpError } from '../../src/http/error-handler.js';
import { DeviceClient, newDevice } from '../support/device-client.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import { connectRaw, parseRawAnswer, readUntilClosed, rawRequest } from '../support/raw-tls.js';
import { linesPastHeldPoints, sessionsInTransaction, waitFor } from '../support/concurrency.js';
import { skipBecause } from '../support/skip.js';
import { storedPoints } from '../support/stored-points.js';

/** Regressions for what an adversarial review of the merged service found. */
describe('review findings', () => {
  const fx = useFixture({
    FLEETGATE_BODY_IDLE_TIMEOUT_MS: '1500',
    FLEETGATE_DB_POOL_SIZE: '2',
    FLEETGATE_DB_ACQUIRE_TIMEOUT_MS: '1000',
  });

  const part = (name: string, body: string) =>
    `--B\r\nContent-Disposition: form-data; name="${name}"; filename="a.csv"\r\n\r\n${body}`;
  const head = (length: number) =>
    `POST /device_endpoint HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: ${length}\r\n\r\n`;

  it('answers 400 to a body that ends without its closing boundary, and stays up', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('trunc'));
    const body = part('c1', '1600001000000,1\n');
    const answer = await rawRequest(fx().server, device, head(Buffer.byteLength(body)) + body);
    expect(answer.status).to.equal(400);
    expect(answer.json.code).to.equal('malformed_multipart');
    expect(await storedPoints(fx().db, fx().server, device, 'c1')).to.deep.equal([]);
    expect((await client.upload([{ name: 'ok', content: '1600001000000,1\n' }])).status).to.equal(
      200,
    );
  });

  it('treats __proto__, constructor and toString as ordinary series names', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('proto'));
    const names = ['__proto__', 'constructor', 'toString'];
    const answer = await client.upload(
      names.map((name) => ({ name, content: '1600002000000,7\n' })),
    );
    expect(answer.status).to.equal(200);
    expect(Object.keys(answer.json.series).sort()).to.deep.equal([...names].sort());
    for (const name of names)
      expect(answer.json.series[name]).to.deep.equal({ stored: 1, duplicates: 0 });
    // Later uploads, of this and other devices, are unaffected.
    const other = await fx().boundDevice(uniqueName('after-proto'));
    const later = await other.client.upload([{ name: 's', content: '1600002000000,1\n' }]);
    expect(later.status).to.equal(200);
    expect(later.json.series).to.deep.equal({ s: { stored: 1, duplicates: 0 } });
    expect(await storedPoints(fx().db, fx().server, device, '__proto__')).to.deep.equal([
      [1600002000000, 7],
    ]);
  });

  it('cuts off an upload that stops sending (408), stores nothing of it, and frees its connection', async () => {
    const { device } = await fx().boundDevice(uniqueName('idle'));
    const socket = await connectRaw(fx().server, device);
    const closed = readUntilClosed(socket);
    // Promises a megabyte, sends one line, then goes quiet.
    socket.write(head(1_000_000) + part('stalled', '1600003000000,1\n'));
    const answer = parseRawAnswer(await closed);
    expect(answer.status).to.equal(408);
    expect(answer.json.code).to.equal('body_timeout');
    expect(await storedPoints(fx().db, fx().server, device, 'stalled')).to.deep.equal([]);
    const { client } = await fx().boundDevice(uniqueName('idle-after'));
    expect((await client.upload([{ name: 's', content: '1600003000000,1\n' }])).status).to.equal(
      200,
    );
  });

  it('answers 503 with Retry-After when every database connection is held, instead of hanging', async function () {
    if (!fx().db.url)
      skipBecause(this, 'the embedded database has one session: its requests queue by design');
    const holders = await Promise.all([1, 2].map(() => fx().boundDevice(uniqueName('holder'))));
    const { client } = await fx().boundDevice(uniqueName('waiter'));
    const sockets = await Promise.all(holders.map(({ device }) => connectRaw(fx().server, device)));
    // Two uploads that keep trickling (never idle long enough to be cut off) hold both connections.
    const trickle = setInterval(() => {
      for (const s of sockets) s.write(`${1600004000000 + Math.floor(Math.random() * 1e6)},1\n`);
    }, 300);
    try {
      for (const s of sockets)
        s.write(head(10_000_000) + part('held', linesPastHeldPoints(1600004000000)));
      // Both uploads hold a connection each, in an open transaction: the pool (2) is full.
      await waitFor('both pool connections held by uploads', async () => {
        return (await sessionsInTransaction(fx().db)) >= 2;
      });
      const answer = await client.upload([{ name: 's', content: '1600004000000,1\n' }]);
      expect(answer.status).to.equal(503);
      expect(answer.json.code).to.equal('unavailable');
      expect(answer.headers['retry-after']).to.equal('5');
    } finally {
      clearInterval(trickle);
      for (const s of sockets) s.destroy();
    }
    await waitFor('the held connections to be released', async () => {
      return (await sessionsInTransaction(fx().db)) === 0;
    });
    expect((await client.upload([{ name: 's', content: '1600004000000,1\n' }])).status).to.equal(
      200,
    );
  });

  it('refuses values that underflow to zero instead of storing 0', async () => {
    const { client } = await fx().boundDevice(uniqueName('underflow'));
    const answer = await client.upload([{ name: 'u', content: '1600005000000,1e-400\n' }]);
    expect(answer.status).to.equal(400);
    expect(answer.json.error).to.contain('out of the double precision range');
    const zero = await client.upload([{ name: 'z', content: '1600005000000,0.0e-400\n' }]);
    expect(zero.status).to.equal(200);
  });

  it('maps a deadlock or serialization failure to a retryable 503', () => {
    for (const code of ['40P01', '40001']) {
      const answer = toHttpError(Object.assign(new Error('deadlock detected'), { code }));
      expect(answer.status).to.equal(503);
      expect(answer.code).to.equal('conflict_retry');
      expect(answer.headers).to.deep.equal({ 'Retry-After': '1' });
    }
  });

  it('keeps serving devices after all of the above', async () => {
    // A device bound now, and one bound before, both upload and are stored.
    const { device, client } = await fx().boundDevice(uniqueName('after-all'));
    const answer = await client.upload([{ name: 's', content: '1600006000000,1\n' }]);
    expect(answer.status, answer.text).to.equal(200);
    expect(answer.json).to.deep.include({ stored: 1, duplicates: 0 });
    expect(await storedPoints(fx().db, fx().server, device, 's')).to.deep.equal([
      [1600006000000, 1],
    ]);
    const stranger = new DeviceClient(fx().server, newDevice());
    fx().clients.push(stranger);
    const refused = await stranger.upload([{ name: 's', content: '1600006000000,1\n' }]);
    expect(refused.status).to.equal(403);
  });
});
