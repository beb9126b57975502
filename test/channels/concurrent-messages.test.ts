import { expect } from 'chai';
import { DeviceClient, type Answer } from '../support/device-client.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import { countStoredPoints } from '../support/stored-points.js';

/**
 * Concurrent batches of one device held in memory wait for each other instead
 * of failing: the deadlocks the database breaks between them are retried by
 * the server (src/ingest/conflict-retry.ts), not answered 503 conflict_retry.
 * That covers JSON messages and small multipart uploads of one series (read
 * whole before anything is written); a streamed upload cannot be read twice.
 */
describe('batches sent at once by a freshly bound device', function () {
  this.timeout(180_000);
  const fx = useFixture({
    FLEETGATE_UPLOADS_PER_DEVICE: '1000000',
    FLEETGATE_MAX_CONCURRENT_UPLOADS_PER_DEVICE: '1000',
  });

  // Five readings of a new series, each sent 40 times at once (a device resending
  // over several connections). The first batches create the series in a transaction
  // that holds the device's row while it inserts the point; a resend stored in one
  // statement inserted the same point and then waits for the device's row to set its
  // last-seen time: a deadlock, which PostgreSQL breaks by aborting one of them.
  // Before the retry, 6 to 27 of the 200 got 503 conflict_retry.
  async function burst(send: (client: DeviceClient, ts: number, value: number) => Promise<Answer>) {
    const { device } = await fx().boundDevice(uniqueName('first-burst'));
    const client = new DeviceClient(fx().server, device, 32);
    const base = Date.now() - 60_000;
    try {
      const answers = await Promise.all(
        Array.from({ length: 200 }, (_, i) => send(client, base + (i % 5), i % 5)),
      );
      const refused = answers.filter((answer) => answer.status !== 200);
      expect(
        refused.map((answer) => answer.text),
        'answers other than 200',
      ).to.deep.equal([]);
      const stored = answers.reduce((n, answer) => n + (answer.json.stored as number), 0);
      expect(stored, 'each reading stored by exactly one answer').to.equal(5);
      expect(await countStoredPoints(fx().db, fx().server, device, ['s'])).to.equal(5);
    } finally {
      await client.close();
    }
  }

  it('answers every one of 200 concurrent first JSON messages, resends among them, with 200 and stores each reading once', () =>
    burst((client, ts, value) =>
      client.send(
        'POST',
        JSON.stringify({ ts, data: { s: value } }),
        { 'content-type': 'application/json' },
        '/device_endpoint/messages',
      ),
    ));

  it('answers every one of 200 concurrent first multipart uploads, resends among them, with 200 and stores each reading once', () =>
    burst((client, ts, value) => client.upload([{ name: 's', content: `${ts},${value}\n` }])));
});
