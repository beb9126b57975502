import { expect } from 'chai';
import { createThrottles, throttledBind } from '../../src/throttle/throttle.service.js';
import { bucketState, MemoryThrottleStore } from '../../src/throttle/throttle-store.js';
import { badRequest } from '../../src/http/app-error.js';

describe('throttle store (memory) and the bind rules on top of it', () => {
  it('takes up to the capacity per key, then refuses; a refund gives one back', async () => {
    const store = new MemoryThrottleStore();
    const policy = { name: 'p', capacity: 2, windowMs: 60_000 };
    expect((await store.take(policy, 'k')).allowed).to.equal(true);
    expect((await store.take(policy, 'k')).allowed).to.equal(true);
    expect((await store.take(policy, 'k')).allowed).to.equal(false);
    await store.refund(policy, 'k');
    expect((await store.take(policy, 'k')).allowed).to.equal(true);
    expect((await store.take({ ...policy, name: 'q' }, 'k')).allowed, 'other family').to.equal(
      true,
    );
  });

  it('bucketState: an empty bucket says when the next token is back', () => {
    expect(bucketState({ capacity: 6, windowMs: 60_000 }, 0.5, false)).to.deep.equal({
      allowed: false,
      remaining: 0,
      retryAfterSeconds: 5,
      resetSeconds: 55,
    });
  });

  it('only refused binds use up the budget; successes and server faults give the token back', async () => {
    const throttles = createThrottles({
      bindFailuresPerAddress: 0,
      bindFailuresPerCertificate: 2,
      bindFailureWindowSeconds: 600,
      uploadsPerDevice: 0,
      uploadWindowSeconds: 60,
    });
    const ok = () => Promise.resolve('bound');
    const refused = () => Promise.reject(badRequest('invalid_psk', 'wrong'));
    const broken = () => Promise.reject(new Error('database down'));
    for (let i = 0; i < 5; i++)
      expect(await throttledBind(throttles, 'a', 'cert', ok)).to.equal('bound');
    for (let i = 0; i < 5; i++) {
      await throttledBind(throttles, 'a', 'cert', broken).catch(() => undefined);
    }
    for (let i = 0; i < 2; i++) {
      const err = await throttledBind(throttles, 'a', 'cert', refused).catch((e: unknown) => e);
      expect((err as { status: number }).status).to.equal(400);
    }
    const err = await throttledBind(throttles, 'a', 'cert', ok).catch((e: unknown) => e);
    expect((err as { status: number }).status).to.equal(429);
  });
});
