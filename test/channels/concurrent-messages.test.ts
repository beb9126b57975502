import { expect } from 'chai';
import { DeviceClient, type Answer } from '../support/device-client.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import { countStoredPoints } from '../support/stored-points.js';

/**
 * Concurrent JSON messages of one device wait for each other instead of
 * failing: the deadlocks the database breaks between them are retried by the
 * server (messages.service.ts), not answered 503 conflict_retry.
 */
describe('JSON messages sent at once by a freshly bound device', function () {
  this.timeout(180_000);
  const fx = useFixture({ FLEETGATE_UPLOADS_PER_DEVICE: '1000000' });

  it('answers every one of 200 concurrent first messages, resends among them, with 200 and stores each reading once', async () => {
    const { device } = await fx().boundDevice(uniqueName('first-burst'));
    const client = new DeviceClient(fx().server, device, 32);
    const base = Date.now() - 60_000;
    try {
      // Five readings of a new series, each sent 40 times at once (a device resending
      // over several connections): before the fix, a resend that inserted its point in one
      // statement and then waited for the device's row, while a transaction holding that
      // row (it had waited to create the series) inserted the same point, deadlocked, and
      // PostgreSQL answered 6 to 27 of the 200 with 503 conflict_retry.
      const answers: Answer[] = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          client.send(
            'POST',
            JSON.stringify({ ts: base + (i % 5), data: { s: i % 5 } }),
            { 'content-type': 'application/json' },
            '/device_endpoint/messages',
          ),
        ),
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
  });
});
