import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/config.js';
import { httpsOptions, loadServerTlsMaterial } from '../../src/server/tls-options.js';

/**
 * The floor of benchmark item 6, run as a process of its own (its CPU is then
 * counted apart from the bench's): Node's https server with fleetgate's TLS
 * options, certificates and suites, answering every request with a constant
 * JSON (no framework, no database, no log). Arguments: the bench server's
 * data and certificate directories. Prints `PORT <n>` once it listens.
 */
const [dataDir, certsDir] = process.argv.slice(2);
const config = loadConfig({ FLEETGATE_DATA_DIR: dataDir!, FLEETGATE_CERTS_DIR: certsDir! });
const options = httpsOptions(loadServerTlsMaterial(config, pino({ level: 'silent' })), config);
const floor = https.createServer(options, (_req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end('{"status":"active"}');
});
floor.listen(0, '127.0.0.1', () => {
  process.stdout.write(`PORT ${(floor.address() as AddressInfo).port}\n`);
});
