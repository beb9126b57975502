import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Session ticket keys (RFC 5077 tickets in TLS 1.2, stateless tickets in TLS
 * 1.3). A key is 48 bytes in nginx's `ssl_session_ticket_key` layout: 16 bytes
 * key name, 16 bytes AES-128 key, 16 bytes HMAC-SHA256 key. So one key
 * directory serves fleetgate's own listener and nginx alike.
 *
 * The current key encrypts new tickets; the previous one only decrypts (a
 * ticket it opened is replaced by a fresh one under the current key). A
 * ticket older than two rotations falls back to a full handshake.
 */
export const TICKET_KEY_BYTES = 48;
export const CURRENT_KEY_FILE = 'current.key';
export const PREVIOUS_KEY_FILE = 'previous.key';

export interface TicketKey {
  name: Buffer;
  aes: Buffer;
  hmac: Buffer;
}

export function parseTicketKey(raw: Buffer, source: string): TicketKey {
  if (raw.length !== TICKET_KEY_BYTES) {
    throw new Error(`${source} must be exactly ${TICKET_KEY_BYTES} bytes, not ${raw.length}`);
  }
  return {
    name: Buffer.from(raw.subarray(0, 16)),
    aes: Buffer.from(raw.subarray(16, 32)),
    hmac: Buffer.from(raw.subarray(32, 48)),
  };
}

export const newTicketKey = (): TicketKey => parseTicketKey(randomBytes(TICKET_KEY_BYTES), 'key');

export class TicketKeyRing {
  private currentKey: TicketKey;
  private previousKey: TicketKey | undefined;

  constructor(current: TicketKey = newTicketKey(), previous?: TicketKey) {
    this.currentKey = current;
    this.previousKey = previous;
  }

  get current(): TicketKey {
    return this.currentKey;
  }

  get previous(): TicketKey | undefined {
    return this.previousKey;
  }

  /** The current key becomes the previous one (decrypt only); `next` encrypts from now on. */
  rotate(next: TicketKey = newTicketKey()): void {
    this.previousKey = this.currentKey;
    this.currentKey = next;
  }

  replace(current: TicketKey, previous?: TicketKey): void {
    this.currentKey = current;
    this.previousKey = previous;
  }

  /** The key a ticket names, and whether it is the current one. */
  find(name: Buffer): { key: TicketKey; current: boolean } | undefined {
    if (name.equals(this.currentKey.name)) return { key: this.currentKey, current: true };
    if (this.previousKey && name.equals(this.previousKey.name)) {
      return { key: this.previousKey, current: false };
    }
    return undefined;
  }
}

/**
 * Node's documented API holds one ticket key (`setTicketKeys`), so rotating
 * with it would throw away every outstanding ticket. Node's SecureContext
 * also has OpenSSL's ticket key callback (`enableTicketKeyCallback` and
 * `onticketkeycallback`, used by Node's own tests); that lets the previous key
 * keep decrypting. Returns false when this Node lacks it (the caller then
 * falls back to `setTicketKeys`).
 *
 * The callback returns [result, hmacKey, aesKey, keyName, iv]: result 1 uses
 * the key, 2 uses it and issues a renewed ticket, 0 means unknown key (full
 * handshake).
 */
export function installTicketKeyRing(secureContext: unknown, ring: TicketKeyRing): boolean {
  const context = (secureContext as { context?: Record<string, unknown> } | undefined)?.context;
  if (!context || typeof context.enableTicketKeyCallback !== 'function') return false;
  context.onticketkeycallback = (name: Buffer, _iv: Buffer, encrypt: boolean) => {
    if (encrypt) {
      const key = ring.current;
      return [1, key.hmac, key.aes, key.name, randomBytes(16)];
    }
    const found = ring.find(name);
    if (!found) return [0, ring.current.hmac, ring.current.aes];
    // 2: always renew. A device then leaves every resumed connection with a
    // fresh ticket under the current key, and TLS 1.3 gets a new ticket after
    // a resumption at all (without it OpenSSL sends none, and wolfSSL 5.5 then
    // offers a session whose binder no longer verifies). nginx renews likewise.
    return [2, found.key.hmac, found.key.aes];
  };
  (context.enableTicketKeyCallback as () => void).call(context);
  return true;
}

/** The keys in a shared key directory: current.key (required) and previous.key. */
export function readTicketKeyDir(dir: string): { current: TicketKey; previous?: TicketKey } {
  const currentPath = path.join(dir, CURRENT_KEY_FILE);
  const previousPath = path.join(dir, PREVIOUS_KEY_FILE);
  const current = parseTicketKey(fs.readFileSync(currentPath), currentPath);
  const previous = fs.existsSync(previousPath)
    ? parseTicketKey(fs.readFileSync(previousPath), previousPath)
    : undefined;
  return previous ? { current, previous } : { current };
}

/**
 * One rotation of a key directory: current.key becomes previous.key and a new
 * random current.key is written (mode 0600, write-then-rename, so a reader
 * never sees half a key). Creates the directory (0700) and a first key when
 * there is none. Run it on every node's schedule from one place (cron), then
 * reload nginx; fleetgate notices the change by itself.
 */
export function rotateTicketKeyDir(dir: string): { rotated: boolean } {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const currentPath = path.join(dir, CURRENT_KEY_FILE);
  const previousPath = path.join(dir, PREVIOUS_KEY_FILE);
  const hadCurrent = fs.existsSync(currentPath);
  if (hadCurrent) {
    const current = fs.readFileSync(currentPath);
    parseTicketKey(current, currentPath);
    writeKeyFile(previousPath, current);
  }
  writeKeyFile(currentPath, randomBytes(TICKET_KEY_BYTES));
  return { rotated: hadCurrent };
}

/** Creates the directory and its keys on first use (current and previous, so nginx has both files). */
export function ensureTicketKeyDir(dir: string): void {
  if (!fs.existsSync(path.join(dir, CURRENT_KEY_FILE))) rotateTicketKeyDir(dir);
  if (!fs.existsSync(path.join(dir, PREVIOUS_KEY_FILE))) rotateTicketKeyDir(dir);
}

function writeKeyFile(file: string, data: Buffer): void {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, data, { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}
