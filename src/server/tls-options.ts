import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { ensureDevServerCertificates } from '../tls/dev-certificates.js';

/**
 * Modern TLS only: 1.2 with forward-secret AEAD suites, and 1.3. Client
 * certificates are requested but not verified against a CA by OpenSSL
 * (devices may be self-signed); the application decides per request. OpenSSL
 * still checks that the client owns the certificate's key.
 */
const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export interface ServerTlsMaterial {
  cert: Buffer;
  key: Buffer;
  /** Set when a development CA was used; devices need it to trust the server. */
  devCaPath?: string;
}

export function loadServerTlsMaterial(config: Config, log: Logger): ServerTlsMaterial {
  if (config.tlsCert && config.tlsKey) {
    return { cert: fs.readFileSync(config.tlsCert), key: fs.readFileSync(config.tlsKey) };
  }
  const dev = ensureDevServerCertificates(config.certsDir);
  log.info(
    { cert: dev.certPath, ca: dev.caPath, created: dev.created },
    dev.created
      ? 'created a development CA and a localhost server certificate; devices trust the CA file'
      : 'using the development server certificate; devices trust the CA file',
  );
  return {
    cert: fs.readFileSync(dev.certPath),
    key: fs.readFileSync(dev.keyPath),
    devCaPath: dev.caPath,
  };
}

export function httpsOptions(material: ServerTlsMaterial, config: Config) {
  return {
    cert: material.cert,
    key: material.key,
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2' as const,
    ciphers: TLS12_CIPHERS,
    honorCipherOrder: true,
    // Client-initiated renegotiation is a DoS lever and could swap the peer
    // certificate mid-connection; turn it off entirely.
    secureOptions: crypto.constants.SSL_OP_NO_RENEGOTIATION,
    headersTimeout: config.timeouts.headersMs,
    requestTimeout: config.timeouts.requestMs,
    keepAliveTimeout: config.timeouts.keepAliveMs,
    // Node checks the two timeouts above only this often (30 s by default), so
    // a slow-loris client would otherwise hold its socket up to 30 s longer.
    connectionsCheckingInterval: Math.min(1000, config.timeouts.headersMs),
  };
}
