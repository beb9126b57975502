import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { Database } from '../db/schema.js';
import type { ServerState } from '../observability/server-state.js';
import { httpsOptions, loadServerTlsMaterial } from '../server/tls-options.js';
import { refusingWhileLingering } from '../http/lingering-close.js';
import { createAdminApp } from './admin-app.js';
import { isLoopback } from './admin-net.js';
import { ensureAdminToken } from './admin-token.service.js';

export interface AdminListener {
  port: number;
  close(): Promise<void>;
}

/**
 * The admin API listens apart from devices: plain HTTP on loopback (only this
 * machine reaches it), TLS with the server certificate anywhere else, since
 * the bearer token must never cross a network in clear. Null when it is off.
 */
export async function startAdminListener(
  db: Kysely<Database>,
  config: Config,
  log: Logger,
  state?: ServerState,
): Promise<AdminListener | null> {
  const { port, host } = config.admin;
  if (port === 'off') return null;
  // A connection that answered `Connection: close` before its body was read serves no more requests.
  const app = refusingWhileLingering(createAdminApp({ db, config }, log, state));
  const secure = !isLoopback(host);
  const server = secure
    ? https.createServer(
        // The server's certificate and TLS settings; no client certificate here.
        { ...httpsOptions(loadServerTlsMaterial(config, log), config), requestCert: false },
        app,
      )
    : http.createServer({ headersTimeout: config.timeouts.headersMs }, app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  log.info(
    { adminPort: bound, adminHost: host, tls: secure },
    `admin API listening on ${secure ? 'https' : 'http'}://${urlHost(host)}:${bound}/`,
  );
  const close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      // A long CSV export gets a moment to finish, then is cut.
      setTimeout(() => server.closeAllConnections(), 5_000).unref();
    });
  return { port: bound, close };
}

/**
 * Generates the admin token on the very first start, and shows it. Called only
 * once every listener is up: a start that fails (a port in use) must not have
 * shown and stored a token that nobody will see again.
 */
export async function announceAdminToken(
  db: Kysely<Database>,
  config: Config,
  log: Logger,
): Promise<void> {
  const token = await ensureAdminToken(db, config.admin.token);
  if (token.newToken) {
    // Straight to the terminal, never through the logger: logs are shipped and kept.
    process.stderr.write(
      `\nfleetgate: generated the admin API token; it is shown this once, store it now:\n\n    ${token.newToken}\n\n` +
        'fleetgate: set FLEETGATE_ADMIN_TOKEN instead, or replace it with `fleetgate admin-token reset`.\n\n',
    );
  }
  log.info({ token: token.source }, 'admin API token ready');
}

export { isLoopback };

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
