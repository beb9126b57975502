import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { loadConfig, type ConfigOverrides } from '../config/config.js';
import { AppError } from '../http/app-error.js';
import { renderNginxConfig } from '../proxy/nginx-config.js';
import { startServer } from '../server/serve.js';
import { createLogger } from '../server/logger.js';
import { writeDeviceCertificate } from '../tls/dev-certificates.js';
import { runAdminCommand } from './admin-runner.js';
import type { AdminArgs } from './admin-commands.js';

/** `fleetgate`: command names and flags here are a contract with users' scripts. */
const program = new Command('fleetgate')
  .description('Device endpoint for IoT fleets: mTLS certificate binding and time-series ingest')
  .showHelpAfterError();

program
  .command('serve')
  .description('start the HTTPS device endpoint (applies pending migrations first)')
  .option(
    '-p, --port <port>',
    'port to listen on (env FLEETGATE_PORT, default 8443; 8081 behind nginx)',
  )
  .option(
    '--host <host>',
    'address to listen on (env FLEETGATE_HOST, default 0.0.0.0; 127.0.0.1 behind nginx)',
  )
  .option('--no-migrate', 'do not apply pending migrations at start')
  .action(async (opts: { port?: string; host?: string; migrate: boolean }) => {
    const config = loadConfig(process.env, {
      port: opts.port,
      host: opts.host,
      migrate: opts.migrate,
    });
    const log = createLogger(config.logLevel, 1);
    const server = await startServer(config, log);
    const stop = (signal: string) => {
      log.info({ signal }, 'shutting down');
      server.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

program
  .command('migrate')
  .description('apply pending database migrations')
  .action(() => admin('migrate', {}));

const identity = program.command('identity').description('manage identities');
identity
  .command('create <name>')
  .description('create an identity (an account, a customer)')
  .action((name: string) => admin('identity.create', { name }));

const psk = program.command('psk').description('manage pre-shared keys');
psk
  .command('issue <identity>')
  .description('issue a PSK for an identity; prints the PSK alone (shown once)')
  .option('--max-devices <n>', 'how many devices the PSK may bind', positiveInt)
  .option('--expires-in <duration>', 'lifetime such as 12h, 30d, 2w')
  .action((name: string, opts: { maxDevices?: number; expiresIn?: string }) =>
    admin('psk.issue', { identity: name, maxDevices: opts.maxDevices, expiresIn: opts.expiresIn }),
  );

program
  .command('export <fingerprint> <series>')
  .description('print a series as epoch_ms,value lines, oldest first')
  .action((fingerprint: string, series: string) => admin('export', { fingerprint, series }));

const certs = program.command('certs').description('development certificates');
certs
  .command('device')
  .description('write a self-signed device key and certificate for trying things out')
  .requiredOption('--out <dir>', 'directory to write device.key and device.crt to')
  .action((opts: { out: string }) => {
    const written = writeDeviceCertificate(path.resolve(opts.out));
    process.stdout.write(
      `certificate: ${written.certPath}\nkey:         ${written.keyPath}\nfingerprint: ${written.fingerprint}\n`,
    );
  });

program
  .command('nginx-config')
  .description(
    'print an nginx configuration for running behind nginx (FLEETGATE_PROXY_MODE=nginx), ' +
      'with limits, timeouts and upstream taken from this configuration',
  )
  .option('--listen <port>', "nginx's public port or address:port", '8443')
  .requiredOption('--prefix <dir>', "directory for nginx's pid file, logs and temp files")
  .action((opts: { listen: string; prefix: string }) => {
    const config = loadConfig(process.env);
    process.stdout.write(renderNginxConfig(config, opts));
  });

async function admin(command: string, args: AdminArgs, overrides: ConfigOverrides = {}) {
  const config = loadConfig(process.env, overrides);
  await runAdminCommand(config, createLogger(config.logLevel, 2), command, args);
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

program.parseAsync(process.argv).catch((err: unknown) => {
  // Operators get one clear line, not a stack trace; FLEETGATE_DEBUG shows it.
  const message = err instanceof AppError || err instanceof Error ? err.message : String(err);
  process.stderr.write(`fleetgate: ${message}\n`);
  if (process.env.FLEETGATE_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
  process.exitCode = 1;
});
