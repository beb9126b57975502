import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { startDeviceEventBus } from '../control/device-event-bus.js';
import type { DatabaseHandle } from '../db/connect.js';
import { PostgresThrottleStore } from '../throttle/postgres-throttle-store.js';
import { RedisThrottleStore } from '../throttle/redis-throttle-store.js';
import { MemoryThrottleStore, type ThrottleStore } from '../throttle/throttle-store.js';
import {
  LayeredSessionStore,
  MemorySessionStore,
  type TlsSessionStore,
} from '../tls/session-store.js';
import { loadSharedTicketKeys, PostgresSessionStore } from '../tls/shared-tls-state.js';
import type { SharedResumption } from './listener.js';

/**
 * What several fleetgate nodes on one PostgreSQL share, so that any node can
 * serve any request: throttle buckets (PostgreSQL, or Redis when
 * FLEETGATE_REDIS_URL is set), TLS sessions and ticket keys, and the news of
 * revocations. The embedded database has one process by construction: it
 * keeps all of this in memory.
 */
export interface SharedState {
  throttleStore: ThrottleStore;
  /** Undefined on the embedded database (the listener keeps its own). */
  resumption?: SharedResumption;
  close(): Promise<void>;
}

export async function openSharedState(
  config: Config,
  database: DatabaseHandle,
  log: Logger,
): Promise<SharedState> {
  const closers: Array<() => Promise<void> | void> = [];
  const local: ThrottleStore =
    database.kind === 'postgres'
      ? new PostgresThrottleStore(database.db, log)
      : new MemoryThrottleStore();
  const throttleStore = config.redisUrl
    ? RedisThrottleStore.connect(config.redisUrl, local, log, redisNamespace(config))
    : local;
  closers.push(() => throttleStore.close());
  let resumption: SharedResumption | undefined;
  if (database.kind === 'postgres' && config.databaseUrl) {
    // Through a transaction-mode pooler a LISTEN holds nothing: the news needs a direct URL.
    const listenUrl =
      config.dbListenUrl ?? (config.dbPooler === 'transaction' ? undefined : config.databaseUrl);
    if (listenUrl) {
      const bus = startDeviceEventBus(listenUrl, log);
      closers.push(() => bus.close());
    } else {
      log.warn(
        'FLEETGATE_DB_POOLER=transaction without FLEETGATE_DB_LISTEN_URL: no device news from ' +
          'other nodes or the CLI; their revocations close WebSocket and MQTT sessions only at ' +
          'the next poll',
      );
    }
    if (config.proxy.mode === 'off') {
      const lifetimeMs = config.tls.sessionLifetimeSeconds * 1000;
      // FLEETGATE_TLS_SESSION_CACHE_SIZE=0 keeps resumption by session ID off. Else
      // PostgreSQL shares the sessions, with this node's own in memory in front.
      let sessions: TlsSessionStore = new MemorySessionStore(0, lifetimeMs);
      if (config.tls.sessionCacheSize > 0) {
        const shared = new PostgresSessionStore(database.db, lifetimeMs, log);
        closers.push(() => shared.close());
        sessions = new LayeredSessionStore(
          new MemorySessionStore(config.tls.sessionCacheSize, lifetimeMs),
          shared,
        );
      }
      const rotationMs = config.tls.ticketKeyRotationSeconds * 1000;
      const reload = () => loadSharedTicketKeys(database.db, rotationMs);
      resumption = { sessions, ticketKeys: { initial: await reload(), reload } };
    }
  }
  log.info(
    { throttleStore: throttleStore.kind, sharedTls: resumption !== undefined },
    'node state: throttle buckets and TLS resumption',
  );
  return {
    throttleStore,
    ...(resumption ? { resumption } : {}),
    close: async () => {
      for (const close of closers.reverse()) await close();
    },
  };
}

/** `fleetgate:<database name>`: fleets on different databases may share one Redis. */
function redisNamespace(config: Config): string {
  const name = config.databaseUrl
    ? decodeURIComponent(new URL(config.databaseUrl).pathname.slice(1)) || 'postgres'
    : 'embedded';
  return `fleetgate:${name}`;
}
