import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/config.js';
import { ensureDevServerCertificates } from '../tls/dev-certificates.js';
import { TRUST_ANCHORS_HEADER, VERIFY_HEADER } from './forwarded-certificate.js';
import { CURRENT_KEY_FILE, ensureTicketKeyDir, PREVIOUS_KEY_FILE } from '../tls/ticket-keys.js';
import {
  nginxSessionCacheMegabytes,
  ticketKeyDirOf,
  tls12Ciphers,
  tls13Ciphersuites,
} from '../tls/tls-policy.js';

/** nginx/nginx.conf.template in the repository, from dist/src/proxy or src/proxy. */
export const NGINX_TEMPLATE = fileURLToPath(
  new URL(
    import.meta.url.includes('/dist/')
      ? '../../../nginx/nginx.conf.template'
      : '../../nginx/nginx.conf.template',
    import.meta.url,
  ),
);

export interface NginxOptions {
  /** nginx's public `listen` value: a port, or address:port. */
  listen: string;
  /** Directory for nginx's pid file, logs and temp files. */
  prefix: string;
  /**
   * The fleetgate nodes nginx balances over (`host:port` or `unix:/path`);
   * empty: this configuration's own listener, the single node.
   */
  upstreams?: string[];
  /**
   * The registered device CAs (PEM bundle) nginx verifies device chains with,
   * written to `device-cas.pem` in the prefix, and their keyed digest
   * (deviceTrustBundle). Absent: none, and a digest the app never accepts.
   */
  deviceCas?: { pem: string; digest: string };
}

/** The CA bundle's file name in nginx's prefix directory. */
export const DEVICE_CAS_FILE = 'device-cas.pem';

/**
 * An nginx configuration derived from fleetgate's own: the body size limit,
 * timeouts, certificate header and upstream address come from the same
 * settings the app runs with, so the two cannot drift apart.
 */
export function renderNginxConfig(config: Config, options: NginxOptions): string {
  if (config.proxy.mode !== 'nginx') {
    throw new Error('set FLEETGATE_PROXY_MODE=nginx (the app must run behind nginx too)');
  }
  if (!/^(\[[0-9a-fA-F:.]+\]:|[0-9.]+:)?\d{1,5}$/.test(options.listen)) {
    throw new Error(`--listen must be a port or address:port, not ${options.listen}`);
  }
  const pairs = serverCertificates(config);
  const deviceCas = deviceCaDirectives(options);
  const tickets = ticketDirectives(config);
  const values: Record<string, string> = {
    USER_DIRECTIVE: userDirective(),
    PREFIX: path.resolve(options.prefix),
    LISTEN: options.listen,
    UPSTREAM_SERVERS: upstreamServers(config, options.upstreams ?? []),
    SERVER_CERTIFICATES: pairs
      .map(
        (pair) => `ssl_certificate ${pair.certPath};\n        ssl_certificate_key ${pair.keyPath};`,
      )
      .join('\n        '),
    TLS12_CIPHERS: tls12Ciphers(config),
    TLS13_CIPHERSUITES: tls13Ciphersuites(),
    SESSION_CACHE_MB: String(nginxSessionCacheMegabytes(config)),
    SESSION_LIFETIME_S: String(config.tls.sessionLifetimeSeconds),
    SESSION_TICKETS: tickets,
    CERT_HEADER: config.proxy.certHeader,
    DEVICE_CAS: deviceCas.directives,
    VERIFY_HEADER,
    TRUST_ANCHORS_HEADER,
    TRUST_ANCHORS_DIGEST: deviceCas.digest,
    MAX_BODY_BYTES: String(config.limits.maxUploadBytes),
    HEADERS_TIMEOUT_MS: String(config.timeouts.headersMs),
    REQUEST_TIMEOUT_MS: String(config.timeouts.requestMs),
    KEEPALIVE_MS: String(config.timeouts.keepAliveMs),
    UPSTREAM_KEEPALIVE_MS: String(Math.floor(config.timeouts.keepAliveMs / 2)),
  };
  const checked = [
    ...Object.entries(values).filter(([name]) => !MULTI_DIRECTIVE.has(name)),
    ...(options.upstreams ?? []).map((upstream) => ['--upstream', upstream]),
    ...pairs.flatMap((pair) => [
      ['certificate', pair.certPath],
      ['certificate key', pair.keyPath],
    ]),
    ['FLEETGATE_TLS_TICKET_KEY_DIR', ticketKeyDirOf(config)],
    ['device CA bundle', deviceCas.file],
  ];
  for (const [name, value] of checked) {
    // A value that could end an nginx directive would let a setting inject configuration.
    if (/[;{}'"\s#]/.test(value!)) {
      throw new Error(`${name} (${value}) cannot be used in an nginx configuration`);
    }
  }
  return fs
    .readFileSync(NGINX_TEMPLATE, 'utf8')
    .replace(/\{\{([A-Z0-9_]+)\}\}/g, (placeholder, name: string) => {
      const value = values[name];
      if (value === undefined) throw new Error(`unknown placeholder ${placeholder} in template`);
      return value;
    });
}

function upstreamAddress(config: Config): string {
  if (config.proxy.listenSocket) return `unix:${config.proxy.listenSocket}`;
  const host = config.host === 'localhost' ? '127.0.0.1' : config.host;
  return host.includes(':') ? `[${host}]:${config.port}` : `${host}:${config.port}`;
}

/** Placeholders built here from checked values that hold several directives. */
const MULTI_DIRECTIVE = new Set([
  'USER_DIRECTIVE',
  'SERVER_CERTIFICATES',
  'SESSION_TICKETS',
  'UPSTREAM_SERVERS',
  'DEVICE_CAS',
]);

/**
 * nginx verifies what the device sends after its certificate with the
 * registered CAs (the app cannot: nginx forwards only the leaf), and forwards
 * its verdict with the digest of those CAs, so the app notices a bundle that
 * is older than its CAs. `optional_no_ca` keeps self-signed (PSK) devices
 * welcome; verify depth 8 is the app's own longest chain. ssl_client_certificate
 * rather than ssl_trusted_certificate: nginx derives its TLS session context
 * from that list, so a session (with its cached verdict) from before a CA change
 * is not resumed after it (tested); the price is that the CA names are sent in
 * the CertificateRequest.
 */
function deviceCaDirectives(options: NginxOptions): {
  directives: string;
  digest: string;
  file: string;
} {
  const pem = options.deviceCas?.pem ?? '';
  const digest = options.deviceCas?.digest ?? 'none';
  const file = path.join(path.resolve(options.prefix), DEVICE_CAS_FILE);
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    return { directives: '# No device CA is registered yet (fleetgate ca trust).', digest, file };
  }
  fs.writeFileSync(file, pem);
  return {
    directives: `ssl_client_certificate ${file};\n        ssl_verify_depth 8;`,
    digest,
    file,
  };
}

/**
 * One `server` line per fleetgate node. With nginx's defaults (max_fails=1,
 * fail_timeout=10s) a node that failed is left out for ten seconds, so a
 * device's retry after a node died lands on a living one.
 */
function upstreamServers(config: Config, upstreams: string[]): string {
  for (const upstream of upstreams) {
    if (!/^(unix:\/\S+|(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5})$/.test(upstream)) {
      throw new Error(`--upstream must be host:port or unix:/path/to/socket, not ${upstream}`);
    }
  }
  const servers = upstreams.length > 0 ? upstreams : [upstreamAddress(config)];
  return servers.map((server) => `server ${server};`).join('\n        ');
}

/**
 * FLEETGATE_TLS_CERT/KEY (and FLEETGATE_TLS_CERT_2/KEY_2) when set, else the
 * development RSA and ECDSA certificates: nginx, like the app, presents the
 * one the client can use.
 */
function serverCertificates(config: Config): Array<{ certPath: string; keyPath: string }> {
  if (config.tlsCert && config.tlsKey) {
    const pairs = [
      { certPath: path.resolve(config.tlsCert), keyPath: path.resolve(config.tlsKey) },
    ];
    if (config.tls.cert2 && config.tls.key2) {
      pairs.push({
        certPath: path.resolve(config.tls.cert2),
        keyPath: path.resolve(config.tls.key2),
      });
    }
    return pairs;
  }
  const dev = ensureDevServerCertificates(config.certsDir);
  return [
    { certPath: dev.certPath, keyPath: dev.keyPath },
    { certPath: dev.ecdsaCertPath, keyPath: dev.ecdsaKeyPath },
  ];
}

/**
 * The same ticket policy as direct mode: tickets on, keys in the shared key
 * directory (current.key encrypts, previous.key still decrypts), rotated by
 * `fleetgate tls rotate-ticket-keys` followed by `nginx -s reload`.
 */
function ticketDirectives(config: Config): string {
  if (config.tls.tickets === 'off') return 'ssl_session_tickets off;';
  const dir = ticketKeyDirOf(config);
  ensureTicketKeyDir(dir);
  return [
    'ssl_session_tickets on;',
    `ssl_session_ticket_key ${path.join(dir, CURRENT_KEY_FILE)};`,
    `ssl_session_ticket_key ${path.join(dir, PREVIOUS_KEY_FILE)};`,
  ].join('\n        ');
}

/**
 * A root master would hand its workers to `nobody`, who cannot open the app's
 * socket; the local runner keeps the invoking user. Production configurations
 * name a dedicated user in the socket's group instead.
 */
function userDirective(): string {
  if (process.getuid?.() !== 0) return '# user: workers run as the invoking user';
  return `user ${os.userInfo().username};`;
}
