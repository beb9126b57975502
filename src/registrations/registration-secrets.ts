import crypto from 'node:crypto';

/**
 * The PIN an owner types: 8 characters from an alphabet without look-alikes
 * (no 0/O/D/Q, 1/I/L, 2/Z, 5/S, 8/B, U/V), read aloud or copied from a
 * device screen without doubt. 21 symbols, 8 of them: about 35 bits, and
 * only 5 guesses before the request is revoked.
 */
export const PIN_ALPHABET = '34679ACEFGHJKMNPRTWXY';
export const PIN_LENGTH = 8;

/** Uniform over the alphabet: rejection sampling, no modulo bias. */
export function generatePin(random: (size: number) => Buffer = crypto.randomBytes): string {
  const limit = 256 - (256 % PIN_ALPHABET.length);
  let pin = '';
  while (pin.length < PIN_LENGTH) {
    for (const byte of random(PIN_LENGTH * 2)) {
      if (byte >= limit) continue;
      pin += PIN_ALPHABET[byte % PIN_ALPHABET.length];
      if (pin.length === PIN_LENGTH) break;
    }
  }
  return pin;
}

/** What an owner typed, as stored: upper case, spaces and dashes dropped. */
export function normalisePin(typed: string): string {
  return typed.toUpperCase().replace(/[\s-]/g, '');
}

/** The request id: 128 random bits, hex (as the registration URL carries it). */
export function generateRid(): string {
  return crypto.randomBytes(16).toString('hex');
}

/** The device's completion secret: 256 random bits, shown once. */
export function generateNonce(): string {
  return crypto.randomBytes(32).toString('hex');
}

/** Salted by the request id, so one PIN hashes differently in every request. */
export function hashPin(rid: string, pin: string): Buffer {
  return crypto
    .createHash('sha256')
    .update(`${rid}:${normalisePin(pin)}`, 'utf8')
    .digest();
}

export function hashNonce(nonce: string): Buffer {
  return crypto.createHash('sha256').update(nonce, 'utf8').digest();
}

export function sameHash(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

/** The last 4 hex digits of a serial number, lower case, zero-padded. */
export function serialLast4(serialNumber: string): string {
  return serialNumber
    .toLowerCase()
    .replace(/[^0-9a-f]/g, '')
    .padStart(4, '0')
    .slice(-4);
}
