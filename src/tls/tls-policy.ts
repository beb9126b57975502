import path from 'node:path';
import type { Config } from '../config/config.js';

/**
 * The device-facing TLS policy, one definition for both modes: fleetgate's own
 * listener (direct) and the nginx configuration `fleetgate nginx-config` renders.
 *
 * TLS 1.2: ECDHE only (forward secrecy), AEAD only. Next to AES-GCM and
 * ChaCha20-Poly1305 it offers AES-128-CCM and AES-128-CCM-8 with ECDSA, the
 * suites of RFC 7925 (the TLS profile for IoT) that constrained devices with
 * an AES-CCM engine and a P-256 key implement, often as their only suite.
 * The server's order wins, so capable clients get GCM or ChaCha20.
 */
export const TLS12_AEAD_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-AES128-CCM',
  'ECDHE-ECDSA-AES128-CCM8',
];

/**
 * `FLEETGATE_TLS_PROFILE=legacy-cbc` adds these after the AEAD suites, for
 * fleets whose TLS stack has no AEAD suite. Still ECDHE (forward secret), still
 * TLS 1.2 only; CBC with HMAC is what the audit calls "obsoleted".
 */
export const TLS12_LEGACY_CBC_CIPHERS = [
  'ECDHE-ECDSA-AES128-SHA256',
  'ECDHE-RSA-AES128-SHA256',
  'ECDHE-ECDSA-AES256-SHA384',
  'ECDHE-RSA-AES256-SHA384',
  'ECDHE-ECDSA-AES128-SHA',
  'ECDHE-RSA-AES128-SHA',
];

/**
 * Every TLS 1.3 suite (all are AEAD with ephemeral key exchange), including the
 * two CCM suites OpenSSL leaves out by default: TLS_AES_128_CCM_SHA256, and
 * TLS_AES_128_CCM_8_SHA256 for devices that have nothing else.
 */
export const TLS13_CIPHERSUITES = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_128_CCM_SHA256',
  'TLS_AES_128_CCM_8_SHA256',
];

/** The TLS 1.2 cipher string in effect: FLEETGATE_TLS_CIPHERS, else the profile's. */
export function tls12Ciphers(config: Config): string {
  if (config.tls.ciphers) return config.tls.ciphers;
  const list =
    config.tls.profile === 'legacy-cbc'
      ? [...TLS12_AEAD_CIPHERS, ...TLS12_LEGACY_CBC_CIPHERS]
      : TLS12_AEAD_CIPHERS;
  return list.join(':');
}

export function tls13Ciphersuites(): string {
  return TLS13_CIPHERSUITES.join(':');
}

/**
 * Where shared ticket keys live: FLEETGATE_TLS_TICKET_KEY_DIR, else (for
 * nginx, which needs files) `ticket-keys` in the certificates directory.
 */
export function ticketKeyDirOf(config: Config): string {
  return config.tls.ticketKeyDir ?? path.join(config.certsDir, 'ticket-keys');
}

/** nginx's shared session cache holds about 256 sessions with a client certificate per MB. */
export function nginxSessionCacheMegabytes(config: Config): number {
  return Math.max(1, Math.ceil(config.tls.sessionCacheSize / 256));
}
