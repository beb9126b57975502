import { unauthorized } from '../http/app-error.js';
import type { CertificateInfo } from './certificate-info.js';

export const MIN_RSA_BITS = 2048;

// 65537 is the floor because small exponents (3 in particular) have a history of
// padding-related attacks, and every mainstream toolchain defaults to 65537 anyway.
const MIN_RSA_EXPONENT = 65537;
const ALLOWED_EC_BITS = new Set([256, 384, 521]);

export function assertAcceptableDeviceCertificate(info: CertificateInfo, now = new Date()): void {
  if (now.getTime() < info.notBefore.getTime()) {
    throw unauthorized(
      'certificate_not_yet_valid',
      `client certificate is not valid before ${info.notBefore.toISOString()}`,
    );
  }
  if (now.getTime() > info.notAfter.getTime()) {
    throw unauthorized(
      'certificate_expired',
      `client certificate expired at ${info.notAfter.toISOString()}`,
    );
  }
  const problem = keyProblem(info);
  if (problem) throw unauthorized('weak_key', `client certificate key rejected: ${problem}`);
}

function keyProblem(info: CertificateInfo): string | null {
  switch (info.keyType) {
    // RSASSA-PSS keys are the same RSA math with a restricted signature scheme, so the same
    // size and exponent rules apply.
    case 'rsa':
    case 'rsa-pss': {
      if (info.keyBits === null || info.keyBits < MIN_RSA_BITS) {
        return `RSA key has ${info.keyBits ?? 'unknown'} bits, at least ${MIN_RSA_BITS} required`;
      }
      const e = info.rsaExponent;
      if (e === null) return 'RSA public exponent is missing or unreasonably large';
      if (e < MIN_RSA_EXPONENT) {
        return `RSA public exponent ${e} is below ${MIN_RSA_EXPONENT}`;
      }
      if (e % 2 === 0) return `RSA public exponent ${e} is even`;
      return null;
    }
    case 'ec':
      return info.keyBits !== null && ALLOWED_EC_BITS.has(info.keyBits)
        ? null
        : 'EC key must use curve P-256, P-384 or P-521';
    case 'ed25519':
    case 'ed448':
      return null;
    default:
      return `key type ${info.keyType} is not accepted (use RSA, EC or EdDSA)`;
  }
}
