import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/config.js';
import { ensureDevServerCertificates } from '../tls/dev-certificates.js';

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
}

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
  const { certPath, keyPath } = serverCertificate(config);
  const values: Record<string, string> = {
    USER_DIRECTIVE: userDirective(),
    PREFIX: path.resolve(options.prefix),
    LISTEN: options.listen,
    UPSTREAM: upstreamAddress(config),
    SERVER_CERT: certPath,
    SERVER_KEY: keyPath,
    CERT_HEADER: config.proxy.certHeader,
    MAX_BODY_BYTES: String(config.limits.maxUploadBytes),
    HEADERS_TIMEOUT_MS: String(config.timeouts.headersMs),
    REQUEST_TIMEOUT_MS: String(config.timeouts.requestMs),
    KEEPALIVE_MS: String(config.timeouts.keepAliveMs),
    UPSTREAM_KEEPALIVE_MS: String(Math.floor(config.timeouts.keepAliveMs / 2)),
  };
  for (const [name, value] of Object.entries(values)) {
    // A value that could end an nginx directive would let a setting inject configuration.
    if (/[;{}'"\s#]/.test(value) && name !== 'USER_DIRECTIVE') {
      throw new Error(`${name} (${value}) cannot be used in an nginx configuration`);
    }
  }
  return fs
    .readFileSync(NGINX_TEMPLATE, 'utf8')
    .replace(/\{\{([A-Z_]+)\}\}/g, (placeholder, name: string) => {
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

/** FLEETGATE_TLS_CERT/KEY when set, else the development certificate in the certs dir. */
function serverCertificate(config: Config): { certPath: string; keyPath: string } {
  if (config.tlsCert && config.tlsKey) {
    return { certPath: path.resolve(config.tlsCert), keyPath: path.resolve(config.tlsKey) };
  }
  return ensureDevServerCertificates(config.certsDir);
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
