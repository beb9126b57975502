import { expect } from 'chai';
import { TokenBuckets } from '../../src/throttle/token-bucket.js';

describe('token buckets', () => {
  it('allows a burst of the capacity, then refills evenly over the window', () => {
    const buckets = new TokenBuckets({ capacity: 3, windowMs: 3000 });
    const t0 = 1_000_000;
    expect([1, 2, 3].map(() => buckets.take('a', t0).allowed)).to.deep.equal([true, true, true]);
    const refused = buckets.take('a', t0);
    expect(refused).to.include({
      allowed: false,
      remaining: 0,
      retryAfterSeconds: 1,
      resetSeconds: 3,
    });
    expect(buckets.take('a', t0 + 999).allowed).to.equal(false);
    expect(buckets.take('a', t0 + 2000).allowed).to.equal(true);
    expect(buckets.take('b', t0).remaining).to.equal(2);
  });

  it('gives a refunded token back without exceeding the capacity', () => {
    const buckets = new TokenBuckets({ capacity: 2, windowMs: 60_000 });
    buckets.take('k', 0);
    buckets.refund('k', 0);
    buckets.refund('k', 0);
    expect(buckets.peek('k', 0)).to.include({ allowed: true, remaining: 2 });
  });

  it('forgets the least recently used key beyond its size bound', () => {
    const buckets = new TokenBuckets({ capacity: 1, windowMs: 60_000 }, 2);
    buckets.take('a', 0);
    buckets.take('b', 0);
    buckets.take('a', 0);
    buckets.take('c', 0);
    expect(buckets.size).to.equal(2);
    expect(buckets.peek('b', 0).allowed, 'b was evicted, so it starts full').to.equal(true);
    expect(buckets.peek('a', 0).allowed).to.equal(false);
  });
});
