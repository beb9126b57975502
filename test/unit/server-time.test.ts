import { expect } from 'chai';
import { DeviceServerTimes } from '../../src/messages/server-time.js';

describe('unit: server time of messages without ts (per device)', () => {
  it('gives a device one millisecond after its last claimed time when the clock has not moved', () => {
    let clock = 1_000;
    const times = new DeviceServerTimes(() => clock);
    const first = times.peek(1);
    times.claim(1, first);
    const second = times.peek(1);
    times.claim(1, second);
    expect([first, second, times.peek(1)]).to.deep.equal([1_000, 1_001, 1_002]);
    // Another device is not affected; and once the clock passes, it is the clock again.
    expect(times.peek(2)).to.equal(1_000);
    clock = 5_000;
    expect(times.peek(1)).to.equal(5_000);
  });

  it('does not advance for a peek that was not claimed (a batch in which every message had ts)', () => {
    const times = new DeviceServerTimes(() => 7);
    times.peek(1);
    times.peek(1);
    expect(times.peek(1)).to.equal(7);
  });

  it('forgets devices whose last time is in the past once it holds many of them', () => {
    let clock = 0;
    const times = new DeviceServerTimes(() => clock);
    for (let id = 0; id <= 10_000; id += 1) times.claim(id, 0);
    clock = 1;
    times.claim(20_000, 1);
    // Entries in the past were swept; what peek answers is unchanged by it.
    expect((times as unknown as { last: Map<number, number> }).last.size).to.equal(1);
    expect(times.peek(0)).to.equal(1);
    expect(times.peek(20_000)).to.equal(2);
  });
});
