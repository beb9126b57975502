import crypto from 'node:crypto';

/**
 * A PSK is 256 random bits, base64url, behind a recognisable prefix so that
 * secret scanners and humans can spot one. Being high-entropy, a plain SHA-256
 * is a safe storage hash (no dictionary to attack) and allows an indexed lookup.
 */
const SECRET_PREFIX = 'fgpsk_';
const RANDOM_BYTES = 32;
/** Characters kept for display: the marker plus 6 of the 43 random ones (36 of 256 bits). */
const DISPLAY_PREFIX_LENGTH = SECRET_PREFIX.length + 6;

export const PSK_MIN_LENGTH = 16;
export const PSK_MAX_LENGTH = 256;

export function generatePskSecret(): string {
  return SECRET_PREFIX + crypto.randomBytes(RANDOM_BYTES).toString('base64url');
}

export function hashPskSecret(secret: string): Buffer {
  return crypto.createHash('sha256').update(secret, 'utf8').digest();
}

export function displayPrefixOf(secret: string): string {
  return secret.slice(0, DISPLAY_PREFIX_LENGTH);
}
