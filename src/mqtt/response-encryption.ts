import crypto from 'node:crypto';
import { badRequest } from '../http/app-error.js';

/**
 * RES encryption (issue 13, seed 001). A REQ may carry `key`: the base64 of
 * 32 random bytes. The RES `data` is then the base64 of
 *
 *   nonce (12 bytes) || ciphertext || tag (16 bytes)
 *
 * where ciphertext is AES-256-GCM of the UTF-8 JSON text of the answer under
 * that key and nonce, without additional data. mbedTLS decrypts it with
 * mbedtls_gcm_auth_decrypt(ctx, len, nonce, 12, NULL, 0, tag, 16, ct, out).
 */
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

/** The 32-byte key of a REQ's `key` field, or a typed refusal. */
export function parseResponseKey(key: unknown): Buffer | undefined {
  if (key === undefined) return undefined;
  if (typeof key !== 'string' || !/^[A-Za-z0-9+/]{43}=$/.test(key)) {
    throw badRequest('invalid_key', '"key" must be the base64 of 32 bytes (44 characters)');
  }
  return Buffer.from(key, 'base64');
}

export function encryptResponse(key: Buffer, data: unknown): string {
  const nonce = crypto.randomBytes(NONCE_BYTES);
  const cipher = crypto.createCipheriv('aes-256-gcm', key, nonce);
  const body = Buffer.concat([
    cipher.update(JSON.stringify(data) ?? 'null', 'utf8'),
    cipher.final(),
  ]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64');
}

/** The reverse, for tests and for a device written in Node. */
export function decryptResponse(key: Buffer, data: string): unknown {
  const raw = Buffer.from(data, 'base64');
  const nonce = raw.subarray(0, NONCE_BYTES);
  const tag = raw.subarray(raw.length - TAG_BYTES);
  const decipher = crypto.createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAuthTag(tag);
  const text = Buffer.concat([
    decipher.update(raw.subarray(NONCE_BYTES, raw.length - TAG_BYTES)),
    decipher.final(),
  ]).toString('utf8');
  return JSON.parse(text) as unknown;
}
