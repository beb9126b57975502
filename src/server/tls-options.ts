import crypto from 'node:crypto';
import fs from 'node:fs';
import type https from 'node:https';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { ConfigError } from '../config/config.js';
import { ensureDevServerCertificates } from '../tls/dev-certificates.js';
import { MemorySessionStore, type TlsSessionStore } from '../tls/session-store.js';
import type { TicketKeyPair } from '../tls/shared-tls-state.js';
import {
  installTicketKeyRing,
  readTicketKeyDir,
  TicketKeyRing,
  type TicketKey,
} from '../tls/ticket-keys.js';
import { tls12Ciphers, tls13Ciphersuites } from '../tls/tls-policy.js';
import { serverTimeouts } from './server-timeouts.js';

export interface CertificatePair {
  cert: Buffer;
  key: Buffer;
  /** `rsa` or `ec`: the client's offered suites and signature algorithms pick one. */
  keyType: string;
}

export interface ServerTlsMaterial {
  /** One or two pairs of different key types (ECDSA P-256 and RSA). */
  pairs: CertificatePair[];
  /** Set when a development CA was used; devices need it to trust the server. */
  devCaPath?: string;
}

function pairFrom(certPath: string, keyPath: string, setting: string): CertificatePair {
  const key = fs.readFileSync(keyPath);
  let keyType: string;
  try {
    keyType = crypto.createPrivateKey(key).asymmetricKeyType ?? 'unknown';
  } catch (err) {
    throw new ConfigError(`${setting}: ${keyPath} is not a readable private key (${String(err)})`);
  }
  return { cert: fs.readFileSync(certPath), key, keyType };
}

/**
 * FLEETGATE_TLS_CERT/KEY (plus FLEETGATE_TLS_CERT_2/KEY_2 of the other key
 * type) when set; else the development CA's RSA and ECDSA server certificates.
 */
export function loadServerTlsMaterial(config: Config, log: Logger): ServerTlsMaterial {
  if (config.tlsCert && config.tlsKey) {
    const pairs = [pairFrom(config.tlsCert, config.tlsKey, 'FLEETGATE_TLS_KEY')];
    if (config.tls.cert2 && config.tls.key2) {
      const second = pairFrom(config.tls.cert2, config.tls.key2, 'FLEETGATE_TLS_KEY_2');
      if (second.keyType === pairs[0]!.keyType) {
        throw new ConfigError(
          `FLEETGATE_TLS_CERT_2 must have the other key type than FLEETGATE_TLS_CERT ` +
            `(both are ${second.keyType}); give one RSA and one ECDSA pair`,
        );
      }
      pairs.push(second);
    }
    return { pairs };
  }
  const dev = ensureDevServerCertificates(config.certsDir);
  log.info(
    { cert: dev.certPath, ecdsaCert: dev.ecdsaCertPath, ca: dev.caPath, created: dev.created },
    dev.created
      ? 'created a development CA and localhost server certificates (RSA and ECDSA P-256); devices trust the CA file'
      : 'using the development server certificates (RSA and ECDSA P-256); devices trust the CA file',
  );
  return {
    pairs: [
      pairFrom(dev.certPath, dev.keyPath, 'development certificate'),
      pairFrom(dev.ecdsaCertPath, dev.ecdsaKeyPath, 'development certificate'),
    ],
    devCaPath: dev.caPath,
  };
}

export function httpsOptions(material: ServerTlsMaterial, config: Config): https.ServerOptions {
  let secureOptions = crypto.constants.SSL_OP_NO_RENEGOTIATION;
  // Client-initiated renegotiation is a DoS lever and could swap the peer
  // certificate mid-connection; turn it off entirely.
  if (config.tls.tickets === 'off') secureOptions |= crypto.constants.SSL_OP_NO_TICKET;
  return {
    // Several pairs of different key types: OpenSSL picks the one the client can use.
    cert: material.pairs.map((pair) => pair.cert),
    key: material.pairs.map((pair) => pair.key),
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2' as const,
    // Node hands the TLS_* names to OpenSSL's TLS 1.3 list, the others to TLS 1.2's.
    ciphers: `${tls13Ciphersuites()}:${tls12Ciphers(config)}`,
    honorCipherOrder: true,
    secureOptions,
    // Lifetime of cached sessions and of tickets (OpenSSL checks it on resumption).
    sessionTimeout: config.tls.sessionLifetimeSeconds,
    ...serverTimeouts(config),
  };
}

/** Ticket keys kept in the database: loaded before the listener starts, then re-read. */
export interface SharedTicketKeys {
  initial: TicketKeyPair;
  reload(): Promise<TicketKeyPair>;
}

export interface Resumption {
  sessions: TlsSessionStore;
  ticketKeys: TicketKeyRing | null;
  stop(): void;
}

/**
 * Session resumption for devices that sleep between uploads:
 *
 * - by session ID: Node keeps no sessions itself; `newSession`/`resumeSession`
 *   put them into `store` (bounded in size and lifetime);
 * - by ticket: keys rotate every FLEETGATE_TLS_TICKET_KEY_ROTATION_SECONDS in
 *   memory, or are read from FLEETGATE_TLS_TICKET_KEY_DIR (shared by several
 *   nodes and nginx; re-read when it changes), the previous key still decrypts.
 *
 * A resumed session carries the client certificate of the full handshake, and
 * the device behind it is looked up on every request as on a new connection.
 */
export function enableResumption(
  server: https.Server,
  config: Config,
  log: Logger,
  store: TlsSessionStore = new MemorySessionStore(
    config.tls.sessionCacheSize,
    config.tls.sessionLifetimeSeconds * 1000,
  ),
  /** How often FLEETGATE_TLS_TICKET_KEY_DIR (or the shared keys) is checked for new keys. */
  keyDirCheckMs = 10_000,
  /** Ticket keys shared by the nodes on one database (used when no key directory is set). */
  sharedKeys?: SharedTicketKeys,
): Resumption {
  server.on('newSession', (id: Buffer, data: Buffer, done: () => void) => {
    // The connection goes on at once; the save finishes beside it. Holding the
    // handshake for a shared (PostgreSQL) store stalled TLS 1.3 connections, and a
    // client that wrote at once had its answer lost to a reset (a 431 to huge headers).
    // A session not saved yet only costs a full handshake.
    done();
    store.set(id, data).catch((err: unknown) => {
      log.warn({ err: String(err) }, 'TLS session store: could not save a session');
    });
  });
  server.on(
    'resumeSession',
    (id: Buffer, done: (err: Error | null, data: Buffer | null) => void) => {
      store.get(id).then(
        (data) => done(null, data ?? null),
        (err: unknown) => {
          log.warn({ err: String(err) }, 'TLS session store: lookup failed, full handshake');
          done(null, null);
        },
      );
    },
  );
  if (config.tls.tickets === 'off') return { sessions: store, ticketKeys: null, stop: () => {} };

  const ring = new TicketKeyRing();
  const timers: NodeJS.Timeout[] = [];
  const context = (server as unknown as { _sharedCreds?: unknown })._sharedCreds;
  const rotating = installTicketKeyRing(context, ring);
  const apply = () => {
    if (!rotating) server.setTicketKeys(Buffer.concat(keyBytes(ring.current)));
  };
  const dir = config.tls.ticketKeyDir;
  if (dir) {
    let seen = '';
    const reload = () => {
      try {
        const keys = readTicketKeyDir(dir);
        const stamp = [keys.current, keys.previous]
          .map((key) => (key ? key.name.toString('hex') : '-'))
          .join(':');
        if (stamp === seen) return;
        seen = stamp;
        ring.replace(keys.current, keys.previous);
        apply();
        log.info({ dir }, 'TLS ticket keys loaded');
      } catch (err) {
        if (!seen) throw new ConfigError(`FLEETGATE_TLS_TICKET_KEY_DIR: ${String(err)}`);
        log.warn({ dir, err: String(err) }, 'TLS ticket keys: keeping the keys in use');
      }
    };
    reload();
    timers.push(setInterval(reload, keyDirCheckMs));
  } else if (sharedKeys) {
    let seen = '';
    const use = (keys: TicketKeyPair) => {
      const stamp = [keys.current, keys.previous]
        .map((key) => (key ? key.name.toString('hex') : '-'))
        .join(':');
      if (stamp === seen) return;
      seen = stamp;
      ring.replace(keys.current, keys.previous);
      apply();
      log.debug('TLS ticket keys loaded from the database');
    };
    use(sharedKeys.initial);
    // Re-read at least once per rotation interval: a reload is also what rotates a due key.
    const everyMs = Math.min(keyDirCheckMs, config.tls.ticketKeyRotationSeconds * 1000);
    timers.push(
      setInterval(() => {
        sharedKeys
          .reload()
          .then(use, (err: unknown) =>
            log.warn({ err: String(err) }, 'TLS ticket keys: keeping the keys in use'),
          );
      }, everyMs),
    );
  } else {
    apply();
    timers.push(
      setInterval(() => {
        ring.rotate();
        apply();
        log.debug('TLS ticket key rotated');
      }, config.tls.ticketKeyRotationSeconds * 1000),
    );
  }
  for (const timer of timers) timer.unref();
  if (!rotating) {
    log.warn(
      'this Node.js has no TLS ticket key callback: tickets issued before a key rotation ' +
        'fall back to a full handshake',
    );
  }
  return {
    sessions: store,
    ticketKeys: ring,
    stop: () => timers.forEach((timer) => clearInterval(timer)),
  };
}

/** Node's setTicketKeys layout: 16 bytes name, 16 bytes HMAC key, 16 bytes AES key. */
function keyBytes(key: TicketKey): Buffer[] {
  return [key.name, key.hmac, key.aes];
}
