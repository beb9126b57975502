import { expect } from 'chai';
import {
  deviceEventPayloads,
  parseDeviceEvent,
  type DeviceEvent,
} from '../../src/devices/device-events.js';

/** The NOTIFY payloads of device news (devices/device-events.ts). */
describe('device event payloads', () => {
  it('a revocation is one payload, in the format the old trigger sent', () => {
    const payloads = deviceEventPayloads({ event: 'revoked', deviceId: 42 });
    expect(payloads).to.deep.equal(['{"event":"revoked","deviceId":42}']);
    expect(parseDeviceEvent(payloads[0])).to.deep.equal({ event: 'revoked', deviceId: 42 });
  });

  it('splits a long list over payloads below PostgreSQL’s 8000 bytes, losing and adding nothing', () => {
    const fingerprints = Array.from({ length: 500 }, (_, i) => i.toString(16).padStart(64, '0'));
    const deviceIds = Array.from({ length: 5000 }, (_, i) => 1_000_000 + i);
    const cases: DeviceEvent[] = [
      { event: 'certificates_refused', fingerprints },
      { event: 'identity_disabled', deviceIds },
    ];
    for (const news of cases) {
      const payloads = deviceEventPayloads(news);
      expect(payloads.length, news.event).to.be.greaterThan(1);
      for (const payload of payloads) expect(Buffer.byteLength(payload)).to.be.below(8000);
      const parsed = payloads.map((p) => parseDeviceEvent(p)!);
      if (news.event === 'certificates_refused') {
        expect(parsed.flatMap((p) => (p as { fingerprints: string[] }).fingerprints)).to.deep.equal(
          fingerprints,
        );
      } else {
        expect(parsed.flatMap((p) => (p as { deviceIds: number[] }).deviceIds)).to.deep.equal(
          deviceIds,
        );
      }
    }
  });

  it('an empty list sends nothing', () => {
    expect(deviceEventPayloads({ event: 'certificates_refused', fingerprints: [] })).to.deep.equal(
      [],
    );
    expect(deviceEventPayloads({ event: 'identity_disabled', deviceIds: [] })).to.deep.equal([]);
  });

  it('ignores what is not news it knows', () => {
    for (const payload of [
      undefined,
      '',
      'not json',
      'null',
      '42',
      '{"event":"revoked"}',
      '{"event":"revoked","deviceId":"7"}',
      '{"event":"identity_disabled","deviceIds":[1,"2"]}',
      '{"event":"certificates_refused","fingerprints":[1]}',
      '{"event":"something_else","deviceId":1}',
    ]) {
      expect(parseDeviceEvent(payload), String(payload)).to.equal(undefined);
    }
  });
});
