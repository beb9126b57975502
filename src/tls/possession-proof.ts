import { verify, X509Certificate } from 'node:crypto';

/** Version tag of the signed rotation message; part of the device protocol. */
export const ROTATION_MESSAGE_PREFIX = 'fleetgate-rotation-v1';

/**
 * The exact bytes a device signs with its NEW private key to rotate: ASCII,
 * no trailing newline, fingerprints in lowercase hex:
 *
 *   fleetgate-rotation-v1:<challenge>:<current certificate fingerprint>:<new certificate fingerprint>
 *
 * so that `printf '%s' "$MSG" | openssl dgst -sha256 -sign new.key` produces
 * the signature. It binds the single-use server challenge (freshness), the
 * device's current certificate (this device) and the new certificate (this key).
 */
export function rotationMessage(challenge: string, current: string, next: string): Buffer {
  return Buffer.from(`${ROTATION_MESSAGE_PREFIX}:${challenge}:${current}:${next}`, 'ascii');
}

/** Standard or URL-safe base64, padded or not; undefined when it is not base64. */
export function decodeSignature(text: string): Buffer | undefined {
  const compact = text.replace(/\s+/g, '');
  if (compact.length === 0 || compact.length > 4096) return undefined;
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(compact)) return undefined;
  return Buffer.from(compact.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

/**
 * True when `signature` is a SHA-256 signature of `message` by the key of the
 * certificate (DER): RSA PKCS#1 v1.5 (or PSS for an RSA-PSS key), or ECDSA
 * with a DER signature as openssl writes it, or raw r||s as some firmware
 * libraries do.
 */
export function verifyPossession(
  certificateDer: Buffer,
  message: Buffer,
  signature: Buffer,
): boolean {
  const key = new X509Certificate(certificateDer).publicKey;
  try {
    if (verify('sha256', message, key, signature)) return true;
    if (key.asymmetricKeyType === 'ec') {
      return verify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, signature);
    }
    return false;
  } catch {
    // A signature of the wrong shape for the key is simply not a valid signature.
    return false;
  }
}
