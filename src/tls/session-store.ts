/**
 * Server-side TLS sessions for resumption by session ID (devices whose TLS
 * stack has tickets turned off resume this way). The interface is async so
 * that a store shared by several nodes (Redis, PostgreSQL) can implement it;
 * today there is the bounded in-memory one below.
 */
export interface TlsSessionStore {
  /** The serialized session saved under this ID, or undefined. */
  get(id: Buffer): Promise<Buffer | undefined>;
  /** Keeps a serialized session (it contains the client certificate and master secret). */
  set(id: Buffer, session: Buffer): Promise<void>;
}

/**
 * At most `maxEntries` sessions, each for `lifetimeMs` after it was stored;
 * the least recently used one is dropped first. 0 entries keeps nothing
 * (resumption by session ID off). OpenSSL checks the session lifetime again on
 * resumption, so an expired entry found here is never resumed either.
 */
export class MemorySessionStore implements TlsSessionStore {
  private readonly entries = new Map<string, { session: Buffer; expiresAt: number }>();

  constructor(
    private readonly maxEntries: number,
    private readonly lifetimeMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(id: Buffer): Promise<Buffer | undefined> {
    const key = id.toString('hex');
    const entry = this.entries.get(key);
    if (!entry) return Promise.resolve(undefined);
    this.entries.delete(key);
    if (entry.expiresAt <= this.now()) return Promise.resolve(undefined);
    this.entries.set(key, entry);
    return Promise.resolve(entry.session);
  }

  set(id: Buffer, session: Buffer): Promise<void> {
    if (this.maxEntries === 0) return Promise.resolve();
    const key = id.toString('hex');
    this.entries.delete(key);
    this.entries.set(key, { session, expiresAt: this.now() + this.lifetimeMs });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    return Promise.resolve();
  }
}

/**
 * A store shared by several nodes (PostgreSQL) with this node's own sessions
 * in front. A device that comes back to the node it last talked to (the usual
 * case, and the only one with one node) resumes without a database round trip;
 * one that lands on another node is found in the shared store, and that node
 * keeps it in front from then on. A saved session never changes, so the copy in
 * front cannot go stale; the front is bounded like any MemorySessionStore, and
 * OpenSSL checks the session's own lifetime on every resumption. Nothing about
 * the device is in the session: it is looked up on every request.
 */
export class LayeredSessionStore implements TlsSessionStore {
  constructor(
    private readonly near: TlsSessionStore,
    private readonly far: TlsSessionStore,
  ) {}

  async get(id: Buffer): Promise<Buffer | undefined> {
    const near = await this.near.get(id);
    if (near) return near;
    const far = await this.far.get(id);
    if (far) await this.near.set(id, far);
    return far;
  }

  async set(id: Buffer, session: Buffer): Promise<void> {
    await this.near.set(id, session);
    await this.far.set(id, session);
  }
}
