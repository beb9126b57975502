import { expect } from 'chai';
import type { DeviceClient } from '../support/device-client.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import { countStoredPoints, storedPoints } from '../support/stored-points.js';

/**
 * Regressions for the second adversarial pass over the wave 2 features
 * (docs/security-review-2026-12.md, "Wave 2 review, second pass") that are not
 * path validation or MQTT cases (those are in
 * test/authorities/path-validation-suites.test.ts and
 * test/mqtt/mqtt-broker-suites.test.ts).
 */
describe('wave 2 review, second pass', function () {
  this.timeout(60_000);
  const fx = useFixture();
  const post = (client: DeviceClient, body: unknown) =>
    client.send(
      'POST',
      JSON.stringify(body),
      { 'content-type': 'application/json' },
      '/device_endpoint/messages',
    );

  it('JSON messages: refuses a batch whose messages without ts share a series, instead of answering 200 and keeping one reading', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('nots-batch'));
    // A backlog sent without timestamps: both would get the same server time.
    const answer = await post(client, [{ data: { t: 1 } }, { data: { t: 2, h: 40 } }]);
    expect(answer.status, answer.text).to.equal(400);
    expect(answer.json.code).to.equal('invalid_timestamp');
    expect(answer.json.details).to.include({ reason: 'missing_in_batch', message: 1, field: 't' });
    expect(await countStoredPoints(fx().db, fx().server, device, ['t', 'h'])).to.equal(0);
    // Different series without ts, or one message without ts among timestamped ones, are fine.
    const fine = await post(client, [
      { data: { t: 1 } },
      { data: { h: 40 } },
      { ts: 1_764_500_000_000, data: { t: 3 } },
    ]);
    expect(fine.status, fine.text).to.equal(200);
    expect(fine.json).to.include({ stored: 3, duplicates: 0 });
    expect(await storedPoints(fx().db, fx().server, device, 't')).to.have.length(2);
  });
});
