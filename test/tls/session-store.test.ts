import { expect } from 'chai';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import {
  LayeredSessionStore,
  MemorySessionStore,
  type TlsSessionStore,
} from '../../src/tls/session-store.js';
import { parseTicketKey, TicketKeyRing } from '../../src/tls/ticket-keys.js';

const id = (n: number) => Buffer.from([n]);

describe('TLS session cache (resumption by session ID)', () => {
  it('keeps at most its size, dropping the least recently used session', async () => {
    const store = new MemorySessionStore(2, 60_000);
    await store.set(id(1), Buffer.from('one'));
    await store.set(id(2), Buffer.from('two'));
    expect(String(await store.get(id(1)))).to.equal('one'); // 1 is now the most recent
    await store.set(id(3), Buffer.from('three'));
    expect(store.size).to.equal(2);
    expect(await store.get(id(2))).to.equal(undefined);
    expect(String(await store.get(id(1)))).to.equal('one');
    expect(String(await store.get(id(3)))).to.equal('three');
  });

  it('forgets a session after its lifetime', async () => {
    let now = 1_000;
    const store = new MemorySessionStore(10, 500, () => now);
    await store.set(id(1), Buffer.from('one'));
    now = 1_499;
    expect(String(await store.get(id(1)))).to.equal('one');
    now = 1_500;
    expect(await store.get(id(1))).to.equal(undefined);
    expect(store.size).to.equal(0);
  });

  it('keeps nothing with size 0', async () => {
    const store = new MemorySessionStore(0, 60_000);
    await store.set(id(1), Buffer.from('one'));
    expect(await store.get(id(1))).to.equal(undefined);
  });
});

describe('TLS sessions of this node in front of the shared store', () => {
  /** The shared store, counting its reads. */
  const shared = () => {
    const store = new MemorySessionStore(100, 60_000);
    const counted = {
      reads: 0,
      get(sid: Buffer) {
        counted.reads++;
        return store.get(sid);
      },
      set: (sid: Buffer, session: Buffer) => store.set(sid, session),
    } satisfies TlsSessionStore & { reads: number };
    return counted;
  };

  it('saves to both and resumes its own sessions without reading the shared store', async () => {
    const far = shared();
    const node = new LayeredSessionStore(new MemorySessionStore(10, 60_000), far);
    await node.set(id(1), Buffer.from('one'));
    expect(String(await far.get(id(1)))).to.equal('one');
    far.reads = 0;
    expect(String(await node.get(id(1)))).to.equal('one');
    expect(far.reads).to.equal(0);
  });

  it("finds another node's session in the shared store, then keeps it in front", async () => {
    const far = shared();
    const a = new LayeredSessionStore(new MemorySessionStore(10, 60_000), far);
    const b = new LayeredSessionStore(new MemorySessionStore(10, 60_000), far);
    await a.set(id(2), Buffer.from('two'));
    far.reads = 0;
    expect(String(await b.get(id(2)))).to.equal('two');
    expect(String(await b.get(id(2)))).to.equal('two');
    expect(far.reads).to.equal(1);
    expect(await b.get(id(3))).to.equal(undefined);
  });

  it('is bounded in front like any session cache: an evicted session is read again', async () => {
    const far = shared();
    const node = new LayeredSessionStore(new MemorySessionStore(1, 60_000), far);
    await node.set(id(1), Buffer.from('one'));
    await node.set(id(2), Buffer.from('two'));
    far.reads = 0;
    expect(String(await node.get(id(1)))).to.equal('one');
    expect(far.reads).to.equal(1);
  });
});

describe('TLS ticket key ring', () => {
  it('finds the current and the previous key, not older ones', () => {
    const key = (n: number) => parseTicketKey(Buffer.alloc(48, n), 'test');
    const ring = new TicketKeyRing(key(1));
    ring.rotate(key(2));
    expect(ring.find(key(2).name)).to.include({ current: true });
    expect(ring.find(key(1).name)).to.include({ current: false });
    ring.rotate(key(3));
    expect(ring.find(key(1).name)).to.equal(undefined);
    expect(() => parseTicketKey(Buffer.alloc(47), 'short.key')).to.throw(/48 bytes/);
  });
});

describe('device TLS settings', () => {
  const base = { FLEETGATE_CERTS_DIR: '/tmp/fg-unit/certs' };

  it('has documented defaults', () => {
    expect(loadConfig(base).tls).to.deep.include({
      profile: 'default',
      sessionCacheSize: 10_000,
      sessionLifetimeSeconds: 3600,
      tickets: 'on',
      ticketKeyRotationSeconds: 3600,
    });
  });

  it('refuses half a second pair, a second pair alone and unknown profiles', () => {
    for (const env of [
      { FLEETGATE_TLS_CERT: 'a', FLEETGATE_TLS_KEY: 'b', FLEETGATE_TLS_CERT_2: 'c' },
      { FLEETGATE_TLS_CERT_2: 'c', FLEETGATE_TLS_KEY_2: 'd' },
      { FLEETGATE_TLS_PROFILE: 'weak' },
      { FLEETGATE_TLS_TICKETS: 'maybe' },
      { FLEETGATE_TLS_CIPHERS: 'AES128; include x' },
    ]) {
      expect(() => loadConfig({ ...base, ...env }), JSON.stringify(env)).to.throw(ConfigError);
    }
  });
});
