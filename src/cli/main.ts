import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type cliProgress from 'cli-progress';
import { Command, InvalidArgumentError } from 'commander';
import { loadConfig, type ConfigOverrides } from '../config/config.js';
import { AppError } from '../http/app-error.js';
import { isPoolerRefusingOptions } from '../db/errors.js';
import type { AdminArgs } from './admin-commands.js';

// Each command imports what it needs when it runs: every `fleetgate` process
// (and the test suite spawns hundreds) would otherwise load the whole server
// (express, kysely, pg, the TLS and certificate code) before parsing its
// arguments, about a second on a loaded 2-core machine for `--version` alone.
const lazy = {
  serve: () => import('../server/serve.js'),
  logger: () => import('../server/logger.js'),
  metrics: () => import('../observability/metrics.js'),
  devCertificates: () => import('../tls/dev-certificates.js'),
  ticketKeys: () => import('../tls/ticket-keys.js'),
  tlsPolicy: () => import('../tls/tls-policy.js'),
  nginxConfig: () => import('../proxy/nginx-config.js'),
  caCertificates: () => import('../authorities/ca-certificates.js'),
  macAddress: () => import('../authorities/mac-address.js'),
  provision: () => import('../authorities/provision.js'),
  caFiles: () => import('../authorities/ca-files.js'),
  adminRunner: () => import('./admin-runner.js'),
  dbCommands: () => import('./db-commands.js'),
  cliProgress: () => import('cli-progress'),
};

interface ServeOptions {
  port?: string;
  host?: string;
  migrate: boolean;
  adminPort?: string;
  adminHost?: string;
  mqttPort?: string;
}

interface JsonOption {
  json?: boolean;
}

interface QueryOptions extends JsonOption {
  from?: string;
  to?: string;
  bucket?: string;
  limit?: number;
  cursor?: string;
}

// `fleetgate export ... | head`: the reader went away, which is the reader's
// right; stop quietly with success instead of a "write EPIPE" error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

/** `fleetgate`: command names and flags here are a contract with users' scripts. */
const program = new Command('fleetgate')
  .description('Device endpoint for IoT fleets: mTLS certificate binding and time-series ingest')
  .version(packageVersion(), '-V, --version', 'print the version')
  // A usage mistake is one line on stderr, with where to look, not the whole help.
  .configureOutput({
    outputError: (message, write) =>
      write(`fleetgate: ${message.trim().replace(/\s*\n\s*/g, ' ')} (see fleetgate --help)\n`),
  });

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
  .option('--admin-port <port>', 'admin API port, or off (env FLEETGATE_ADMIN_PORT, default 8080)')
  .option('--admin-host <host>', 'admin API address (env FLEETGATE_ADMIN_HOST, default 127.0.0.1)')
  .option(
    '--mqtt-port <port>',
    'MQTT over TLS port, or off (env FLEETGATE_MQTT_PORT, default 8883)',
  )
  .action(async (opts: ServeOptions) => {
    const config = loadConfig(process.env, {
      port: opts.port,
      host: opts.host,
      migrate: opts.migrate,
      adminPort: opts.adminPort,
      adminHost: opts.adminHost,
      mqttPort: opts.mqttPort,
    });
    const [{ createLogger }, { startServer }, { countDroppedLogLine }] = await Promise.all([
      lazy.logger(),
      lazy.serve(),
      lazy.metrics(),
    ]);
    const log = createLogger(config.logLevel, 1, { sync: false, onDrop: countDroppedLogLine });
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
  .option('--max-devices <n>', 'devices the identity may have bound at once', positiveInt)
  .option(
    '--require-confirmation',
    "new devices wait for their owner's confirmation with a PIN before they may upload",
  )
  .action((name: string, opts: { maxDevices?: number; requireConfirmation?: boolean }) =>
    admin('identity.create', {
      name,
      maxDevices: opts.maxDevices,
      requireConfirmation: opts.requireConfirmation === true,
    }),
  );
identity
  .command('set <name>')
  .description('change a setting of an identity')
  .requiredOption(
    '--require-confirmation <on|off>',
    "on: new devices wait for their owner's confirmation with a PIN; off: they are active at once",
    onOff,
  )
  .action((name: string, opts: { requireConfirmation: boolean }) =>
    admin('identity.set', { name, requireConfirmation: opts.requireConfirmation }),
  );
identity
  .command('list')
  .description('list identities with device counts and limits')
  .option('--json', 'print JSON')
  .action((opts: JsonOption) => admin('identity.list', { json: opts.json }));
identity
  .command('show <name>')
  .description('show one identity')
  .option('--json', 'print JSON')
  .action((name: string, opts: JsonOption) => admin('identity.show', { name, json: opts.json }));
identity
  .command('disable <name>')
  .description("refuse the identity's devices and PSKs until it is enabled again")
  .action((name: string) => admin('identity.disable', { name }));
identity
  .command('enable <name>')
  .description('accept a disabled identity again')
  .action((name: string) => admin('identity.enable', { name }));
identity
  .command('limit <name> <max-devices>')
  .description('set how many devices the identity may have bound ("none": no limit)')
  .action((name: string, maxDevices: string) => admin('identity.limit', { name, maxDevices }));

const registration = program
  .command('registration')
  .description("registration requests waiting for their owner's confirmation with a PIN");
registration
  .command('list <identity>')
  .description("list an identity's pending registration requests (never their PIN)")
  .option('--json', 'print JSON')
  .action((name: string, opts: JsonOption) =>
    admin('registration.list', { identity: name, json: opts.json }),
  );
registration
  .command('confirm <identity> <pin> <serial4>')
  .description(
    "confirm a device as its owner: the PIN it showed and the last 4 hex digits of its certificate's serial number",
  )
  .action((name: string, pin: string, serial4: string) =>
    admin('registration.confirm', { identity: name, pin, serial4 }),
  );

const psk = program.command('psk').description('manage pre-shared keys');
psk
  .command('issue <identity>')
  .description('issue a PSK for an identity; prints the PSK alone (shown once)')
  .option('--max-devices <n>', 'how many devices the PSK may bind', positiveInt)
  .option('--expires-in <duration>', 'lifetime such as 12h, 30d, 2w')
  .option('--single-use', 'the PSK binds exactly one device')
  .action((name: string, opts: { maxDevices?: number; expiresIn?: string; singleUse?: boolean }) =>
    admin('psk.issue', {
      identity: name,
      maxDevices: opts.maxDevices,
      expiresIn: opts.expiresIn,
      singleUse: opts.singleUse,
    }),
  );
psk
  .command('list <identity>')
  .description("list an identity's PSKs: id, prefix, uses, limit, expiry (never the secret)")
  .option('--json', 'print JSON')
  .action((name: string, opts: JsonOption) =>
    admin('psk.list', { identity: name, json: opts.json }),
  );
psk
  .command('revoke <id>')
  .description('revoke a PSK by id; devices already bound with it keep working')
  .action((id: string) => admin('psk.revoke', { id: positiveInt(id) }));

const devices = program.command('devices').description('list and pre-register devices');
devices
  .command('preregister <identity>')
  .description(
    'pre-register device names (MACs) without issuing certificates, for devices with a vendor CA',
  )
  .requiredOption('--macs <file>', 'one MAC address per line')
  .action(async (name: string, opts: { macs: string }) => {
    const { parseMacFile } = await lazy.macAddress();
    await admin('devices.preregister', {
      identity: name,
      macs: parseMacFile(fs.readFileSync(opts.macs, 'utf8')).join('\n'),
    });
  });
devices
  .command('list [identity]')
  .description(
    "list an identity's devices, or without IDENTITY every device of the fleet: certificate, status, bound at, last seen",
  )
  .option('--json', 'print JSON')
  .action((name: string | undefined, opts: JsonOption) =>
    admin('devices.list', { identity: name, json: opts.json }),
  );

const device = program.command('device').description('manage one device');
device
  .command('show <fingerprint>')
  .description('show a device and all its certificates')
  .option('--json', 'print JSON')
  .action((fingerprint: string, opts: JsonOption) =>
    admin('device.show', { fingerprint, json: opts.json }),
  );
device
  .command('revoke <fingerprint>')
  .description('revoke a device permanently; its next request is refused')
  .option('--reason <text>', 'why, kept in the audit log')
  .action((fingerprint: string, opts: { reason?: string }) =>
    admin('device.revoke', { fingerprint, reason: opts.reason }),
  );

device
  .command('replace-cert <fingerprint> <file>')
  .description(
    "an admin's explicit renewal: FILE (PEM) becomes the device's certificate, the others retire now; the device and its data stay",
  )
  .action((fingerprint: string, file: string) =>
    admin('device.replace-cert', { fingerprint, pem: fs.readFileSync(file, 'utf8') }),
  );

program
  .command('rotations')
  .description('pending certificate rotations')
  .command('list [identity]')
  .description('list pending rotations (key proven, not yet completed), of one identity or all')
  .option('--json', 'print JSON')
  .action((name: string | undefined, opts: JsonOption) =>
    admin('rotations.list', { identity: name, json: opts.json }),
  );

program
  .command('rotation')
  .description('one pending certificate rotation')
  .command('cancel <id>')
  .description("cancel a pending rotation by id; the device's current certificate stays")
  .option('--reason <text>', 'why, kept in the audit log')
  .action((id: string, opts: { reason?: string }) =>
    admin('rotation.cancel', { id: positiveInt(id), reason: opts.reason }),
  );

program
  .command('audit [identity]')
  .description('print the audit log, newest first')
  .option('--device <fingerprint>', 'only events of this device')
  .option('--action <action>', 'only this action, e.g. device.bind_refused')
  .option('--limit <n>', 'how many events (default 100)', positiveInt)
  .option('--json', 'print JSON')
  .action(
    (
      name: string | undefined,
      opts: JsonOption & { device?: string; action?: string; limit?: number },
    ) =>
      admin('audit', {
        identity: name,
        fingerprint: opts.device,
        action: opts.action,
        limit: opts.limit,
        json: opts.json,
      }),
  );

program
  .command('series')
  .description("a device's series")
  .command('list <fingerprint>')
  .description("list a device's series with point count, first and last timestamp, by name")
  .option('--limit <n>', 'one page of at most n series (1-1000), with the next cursor', positiveInt)
  .option('--cursor <cursor>', 'the next cursor of a previous page')
  .option('--json', 'print JSON')
  .action((fingerprint: string, opts: JsonOption & { limit?: number; cursor?: string }) =>
    admin('series.list', {
      fingerprint,
      json: opts.json,
      limit: opts.limit,
      cursor: opts.cursor,
    }),
  );

program
  .command('query <fingerprint> <series>')
  .description('print a series by time range as epoch_ms,value CSV, or in time buckets')
  .option('--from <time>', 'inclusive start: epoch ms or ISO 8601')
  .option('--to <time>', 'exclusive end: epoch ms or ISO 8601')
  .option('--bucket <duration>', 'aggregate into buckets such as 1m, 1h, 1d (count,avg,min,max)')
  .option('--limit <n>', 'one page of at most n rows, as JSON with a next cursor', positiveInt)
  .option('--cursor <cursor>', 'the next cursor of a previous page')
  .option('--json', 'print JSON')
  .action((fingerprint: string, series: string, opts: QueryOptions) =>
    admin('query', { fingerprint, series, ...opts }),
  );

program
  .command('admin-token')
  .description('the admin API token')
  .command('reset')
  .description('replace the stored admin API token; prints the new one (shown once)')
  .action(() => admin('admin-token.reset', {}));

program
  .command('retention')
  .description(
    'delete points in whole months older than a duration; shows what would go unless --yes',
  )
  .requiredOption('--older-than <duration>', 'age such as 400d or 60w')
  .option('--yes', 'delete them (without it, only show them)')
  .option('--json', 'print JSON')
  .action((opts: JsonOption & { olderThan: string; yes?: boolean }) =>
    admin('retention', { olderThan: opts.olderThan, yes: opts.yes, json: opts.json }),
  );

program
  .command('export <fingerprint> <series>')
  .description('print a series as epoch_ms,value lines, oldest first')
  .action((fingerprint: string, series: string) => admin('export', { fingerprint, series }));

const ca = program
  .command('ca')
  .description("certificate authorities an identity's devices enroll by");
ca.command('create <identity>')
  .description(
    'make a device CA (ECDSA P-256): writes DIR/ca.crt and DIR/ca.key (0600) and trusts ca.crt for the identity',
  )
  .requiredOption('--out <dir>', 'directory for ca.crt and ca.key (the key stays with the factory)')
  .option('--name <cn>', 'common name of the CA (default: "<identity> device CA")')
  .action(async (name: string, opts: { out: string; name?: string }) => {
    const dir = path.resolve(opts.out);
    const [{ createDeviceCa }, { writeCaFiles }] = await Promise.all([
      lazy.caCertificates(),
      lazy.caFiles(),
    ]);
    const material = await createDeviceCa(opts.name ?? `${name} device CA`);
    const written = writeCaFiles(dir, material);
    try {
      await admin('ca.trust', { identity: name, pem: material.certificatePem });
    } catch (err) {
      // Not registered: leave no CA behind that the server does not know.
      written.remove();
      throw err;
    }
    process.stdout.write(`certificate: ${written.certPath}\nkey:         ${written.keyPath}\n`);
  });
ca.command('trust <identity> <file>')
  .description("register a manufacturer's root or intermediate CA certificate (PEM or DER)")
  .action(async (name: string, file: string) => {
    const { readCertificateFile } = await lazy.caFiles();
    await admin('ca.trust', { identity: name, pem: readCertificateFile(file) });
  });
ca.command('list <identity>')
  .description("list the identity's trusted CAs with fingerprint, subject, validity, CRL")
  .option('--json', 'print JSON')
  .action((name: string, opts: JsonOption) =>
    admin('ca.list', { identity: name, json: opts.json }),
  );
ca.command('remove <identity> <fingerprint>')
  .description('stop trusting a CA; devices it enrolled keep working')
  .action((name: string, fingerprint: string) =>
    admin('ca.remove', { identity: name, fingerprint }),
  );
ca.command('crl <identity> <file>')
  .description("load a CRL (PEM or DER) of one of the identity's CAs")
  .action(async (name: string, file: string) => {
    const { readCertificateFile } = await lazy.caFiles();
    await admin('ca.crl', { identity: name, crl: readCertificateFile(file) });
  });

program
  .command('provision <identity>')
  .description(
    'issue a certificate per MAC with the CA in --ca-dir and pre-register the MACs; rerunning creates nothing twice',
  )
  .requiredOption('--ca-dir <dir>', 'directory with ca.crt and ca.key (from fleetgate ca create)')
  .requiredOption('--macs <file>', 'one MAC address per line')
  .requiredOption('--out <dir>', 'where OUT/<mac>/ bundles and OUT/manifest.csv go')
  .option('--csr-dir <dir>', 'sign <mac without colons>.csr from here; no keys are generated')
  .option(
    '--server-ca <file>',
    'what devices trust to reach fleetgate (default: the development CA under FLEETGATE_CERTS_DIR)',
  )
  .option('--days <n>', 'certificate lifetime in days (default 3650)', positiveInt)
  .action(
    async (
      name: string,
      opts: {
        caDir: string;
        macs: string;
        out: string;
        csrDir?: string;
        serverCa?: string;
        days?: number;
      },
    ) => {
      const [{ parseMacFile }, { parseCertificate, summarize }, { loadCa, provisionBundles }] =
        await Promise.all([lazy.macAddress(), lazy.caCertificates(), lazy.provision()]);
      const macs = parseMacFile(fs.readFileSync(opts.macs, 'utf8'));
      const config = loadConfig(process.env);
      const serverCaFile = opts.serverCa ?? path.join(config.certsDir, 'dev-ca.crt');
      if (!fs.existsSync(serverCaFile)) {
        throw new Error(`${serverCaFile} does not exist: say what devices trust with --server-ca`);
      }
      const caDir = path.resolve(opts.caDir);
      const caFingerprint = summarize(parseCertificate(loadCa(caDir).certPem)).fingerprint;
      // Names first: a bundle never exists for a MAC the server would refuse.
      await admin('devices.preregister', {
        identity: name,
        macs: macs.join('\n'),
        caFingerprint,
        batch: path.resolve(opts.out),
        quiet: true,
      });
      const bar = await progressBar(macs.length);
      const rows = await provisionBundles({
        macs,
        caDir,
        outDir: path.resolve(opts.out),
        serverCaPem: fs.readFileSync(serverCaFile, 'utf8'),
        csrDir: opts.csrDir ? path.resolve(opts.csrDir) : undefined,
        days: opts.days ?? 3650,
        onProgress: (done) => bar?.update(done),
      });
      bar?.stop();
      const created = rows.filter((r) => r.status === 'provisioned').length;
      process.stdout.write(
        `provisioned ${created}, existing ${rows.length - created}; manifest: ${path.join(path.resolve(opts.out), 'manifest.csv')}\n`,
      );
    },
  );
const dbCommand = program
  .command('db')
  .description('move the whole database: from the embedded one to PostgreSQL');
dbCommand
  .command('export')
  .description('print the whole database as JSON lines (a consistent snapshot), for db import')
  .action(() => admin('db.export', {}));
dbCommand
  .command('import')
  .description(
    'read a db export from stdin into the empty PostgreSQL database of DATABASE_URL, in one transaction',
  )
  .action(async () => {
    const config = loadConfig(process.env);
    const [{ createLogger }, { runDbImport }] = await Promise.all([
      lazy.logger(),
      lazy.dbCommands(),
    ]);
    await runDbImport(config, createLogger(config.logLevel, 2), process.stdin);
  });

const certs = program.command('certs').description('development certificates');
certs
  .command('device')
  .description('write a self-signed device key and certificate for trying things out')
  .requiredOption('--out <dir>', 'directory to write device.key and device.crt to')
  .action(async (opts: { out: string }) => {
    const { writeDeviceCertificate } = await lazy.devCertificates();
    const written = writeDeviceCertificate(path.resolve(opts.out));
    process.stdout.write(
      `certificate: ${written.certPath}\nkey:         ${written.keyPath}\nfingerprint: ${written.fingerprint}\n`,
    );
  });

const tlsCommand = program.command('tls').description('device TLS');
tlsCommand
  .command('rotate-ticket-keys')
  .description(
    'rotate the shared session ticket keys: current.key becomes previous.key, a new ' +
      'current.key is written (then `nginx -s reload`; fleetgate reads them by itself)',
  )
  .option(
    '--dir <dir>',
    'key directory (default: FLEETGATE_TLS_TICKET_KEY_DIR or CERTS_DIR/ticket-keys)',
  )
  .action(async (opts: { dir?: string }) => {
    const [{ ticketKeyDirOf }, { rotateTicketKeyDir }] = await Promise.all([
      lazy.tlsPolicy(),
      lazy.ticketKeys(),
    ]);
    const dir = path.resolve(opts.dir ?? ticketKeyDirOf(loadConfig(process.env)));
    const { rotated } = rotateTicketKeyDir(dir);
    process.stdout.write(`${rotated ? 'rotated' : 'created'} ticket keys in ${dir}\n`);
  });

program
  .command('nginx-config')
  .description(
    'print an nginx configuration for running behind nginx (FLEETGATE_PROXY_MODE=nginx), ' +
      'with limits, timeouts and upstream taken from this configuration, and write the ' +
      'registered device CAs to PREFIX/device-cas.pem (render and reload after ca trust/remove)',
  )
  .option('--listen <port>', "nginx's public port or address:port", '8443')
  .requiredOption('--prefix <dir>', "directory for nginx's pid file, logs and temp files")
  .option(
    '--upstream <address>',
    'a fleetgate node (host:port or unix:/path); repeat it for several nodes ' +
      "(default: this configuration's own listener)",
    (value: string, previous: string[]) => [...previous, value],
    [] as string[],
  )
  .action(async (opts: { listen: string; prefix: string; upstream: string[] }) => {
    const config = loadConfig(process.env);
    const [{ renderNginxConfig }, { createLogger }, { runAdminCommand }] = await Promise.all([
      lazy.nginxConfig(),
      lazy.logger(),
      lazy.adminRunner(),
    ]);
    // The registered device CAs, from the same database the app uses (through
    // the running server on the embedded database).
    const chunks: Buffer[] = [];
    const collect = new Writable({
      write: (chunk: Buffer, _encoding, done) => (chunks.push(Buffer.from(chunk)), done()),
    });
    await runAdminCommand(config, createLogger(config.logLevel, 2), 'ca.bundle', {}, collect);
    process.stdout.write(
      renderNginxConfig(config, {
        listen: opts.listen,
        prefix: opts.prefix,
        upstreams: opts.upstream,
        deviceCas: JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          pem: string;
          digest: string;
        },
      }),
    );
  });

async function admin(command: string, args: AdminArgs, overrides: ConfigOverrides = {}) {
  const config = loadConfig(process.env, overrides);
  const [{ createLogger }, { runAdminCommand }] = await Promise.all([
    lazy.logger(),
    lazy.adminRunner(),
  ]);
  await runAdminCommand(config, createLogger(config.logLevel, 2), command, args);
}

function packageVersion(): string {
  // dist/src/cli/main.js -> package.json at the package root.
  const file = fileURLToPath(new URL('../../../package.json', import.meta.url));
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
}

/** A progress bar on a terminal only; scripts and CI logs get the summary line alone. */
async function progressBar(total: number): Promise<cliProgress.SingleBar | null> {
  if (!process.stderr.isTTY) return null;
  const { default: cliProgress } = await lazy.cliProgress();
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: 'provisioning [{bar}] {value}/{total} {eta_formatted}' },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return bar;
}

function onOff(value: string): boolean {
  if (value === 'on') return true;
  if (value === 'off') return false;
  throw new InvalidArgumentError('must be on or off');
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

program.parseAsync(process.argv).catch((err: unknown) => {
  // Operators get one clear line, not a stack trace; FLEETGATE_DEBUG shows it.
  let message = err instanceof AppError || err instanceof Error ? err.message : String(err);
  if (isPoolerRefusingOptions(err)) {
    message +=
      ': DATABASE_URL leads to a connection pooler (PgBouncer); set FLEETGATE_DB_POOLER=session ' +
      'or FLEETGATE_DB_POOLER=transaction to its pool mode (README: Through a connection pooler)';
  }
  process.stderr.write(`fleetgate: ${message}\n`);
  if (process.env.FLEETGATE_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
  process.exitCode = 1;
});
