/**
 * fleetgate behind a real PgBouncer (Debian 12's 1.18), in session and in
 * transaction pool mode: what README's "Through a connection pooler" says.
 * The test database is made and checked over a direct connection; the server
 * and its CLI reach it only through the bouncer (the device news listener of
 * transaction mode excepted, which needs a direct URL).
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { expect } from 'chai';
import { AdminClient } from '../support/admin-client.js';
import { DeviceClient, newDevice } from '../support/device-client.js';
import {
  BIN,
  runCli,
  startFleetgate,
  type FleetgateProcess,
} from '../support/fleetgate-process.js';
import { pgbouncerUnavailable, startPgBouncer, type PgBouncer } from '../support/pgbouncer.js';
import { skipBecause } from '../support/skip.js';
import {
  createTestDatabase,
  queryTestDatabase,
  type TestDatabase,
} from '../support/test-database.js';
import { openWatchedSocket } from '../support/websocket-client.js';
import { serverLogCaughtUp } from '../support/server-log.js';

const DEVICES = 6;
const POINTS = 40;

/** Two series of POINTS points each, the same on every call for one device. */
function parts(device: number) {
  const series = (offset: number) =>
    Array.from(
      { length: POINTS },
      (_, i) => `${1_700_000_000_000 + i * 1000},${device * 1000 + offset + i}\n`,
    ).join('');
  return [
    { name: 'temperature', content: series(0) },
    { name: 'humidity', content: series(500) },
  ];
}

async function storedRows(db: TestDatabase): Promise<number> {
  const [row] = await queryTestDatabase<{ n: string }>(
    db,
    'select count(*)::text as n from points',
  );
  return Number(row!.n);
}

function behindPgBouncer(
  mode: 'session' | 'transaction',
  settings: Record<string, string>,
  env: (db: TestDatabase) => object,
) {
  describe(`behind PgBouncer 1.18 in ${mode} mode`, function () {
    this.timeout(180_000);
    let bouncer: PgBouncer | undefined;
    let db: TestDatabase | undefined;
    let server: FleetgateProcess | undefined;
    let admin: AdminClient | undefined;
    const clients: DeviceClient[] = [];

    before(async function () {
      const why = pgbouncerUnavailable();
      if (why) skipBecause(this, why);
      bouncer = await startPgBouncer(mode, settings);
      db = await createTestDatabase({ migrated: true });
      if (mode === 'session') {
        // A default that would lose acknowledged uploads in a crash: fleetgate must override it.
        const [{ name }] = await queryTestDatabase<{ name: string }>(
          db,
          'select current_database() as name',
        );
        await queryTestDatabase(db, `alter database ${name} set synchronous_commit = off`);
      }
      server = await startFleetgate(db, {
        DATABASE_URL: bouncer.through(db.url!),
        // Closed at once only by the news: the poll would take a minute.
        FLEETGATE_WS_REVOCATION_POLL_MS: '60000',
        FLEETGATE_UPLOADS_PER_DEVICE: '0',
        ...env(db),
      });
      admin = new AdminClient(server);
    });
    after(async function () {
      this.timeout(60_000);
      await Promise.all(clients.map((client) => client.close()));
      await admin?.close();
      await server?.stop();
      await db?.drop();
      await bouncer?.stop();
    });

    it('binds devices and stores each multipart upload once, retries included, with no 500', async () => {
      const psk = await admin!.identityWithPsk('pooled', DEVICES + 1);
      for (let i = 0; i < DEVICES; i++) clients.push(new DeviceClient(server!, newDevice()));
      // Together: in transaction mode more requests at once than the bouncer has server
      // connections (3), so that one connection of fleetgate's pool runs its statements on
      // several of them.
      const bound = await Promise.all(clients.map((client) => client.bind(psk)));
      for (const answer of bound) expect(answer.status, answer.text).to.equal(200);
      for (let round = 0; round < 3; round++) {
        const answers = await Promise.all(clients.map((client, i) => client.upload(parts(i))));
        for (const answer of answers) {
          expect(answer.status, `round ${round}: ${answer.text}`).to.equal(200);
          // The first round stores every point; a retry of the same points stores none again.
          expect(answer.json.stored).to.equal(round === 0 ? 2 * POINTS : 0);
        }
        expect(await storedRows(db!), `round ${round}`).to.equal(DEVICES * 2 * POINTS);
      }
      await serverLogCaughtUp(server!);
      expect(server!.output()).to.not.match(/"status":5\d\d/);
      // Session mode: on, whatever the database's default (off); transaction mode: the
      // server's default (on). The start says so.
      expect(server!.output()).to.match(/database commits are durable/);
    });

    it('serves the admin API and the CLI through the bouncer', async () => {
      const device = clients[0]!.device!;
      const shown = await admin!.get(`/v1/devices/${device.fingerprint}`);
      expect(shown.status, shown.text).to.equal(200);
      const listed = await server!.cli(['devices', 'list', 'pooled']);
      expect(listed.code, listed.stderr).to.equal(0);
      expect(listed.stdout).to.include(device.fingerprint);
    });

    it('closes the WebSocket of a device revoked from the CLI at once (the news), and refuses it', async () => {
      const client = clients[1]!;
      const device = client.device!;
      const { closed } = await openWatchedSocket(server!, device);
      const revoked = await server!.cli(['device', 'revoke', device.fingerprint]);
      expect(revoked.code, revoked.stderr).to.equal(0);
      expect(await closed).to.deep.equal({ code: 1008, reason: 'device_revoked' });
      const closes = () =>
        server!
          .output()
          .split('\n')
          .filter((line) => line.includes('WebSocket connections closed'))
          .map((line) => JSON.parse(line) as { by: string });
      // The client may see its socket closed before the server's log line reaches us.
      while (closes().length === 0) await once(server!.child.stdout!, 'data');
      // Closed once, by the news, and by nothing else (a line still on its way included).
      await serverLogCaughtUp(server!);
      expect(closes().map((entry) => entry.by)).to.deep.equal(['news']);
      const refused = await client.upload(parts(1));
      expect(refused.status, refused.text).to.equal(403);
      expect(refused.json.code).to.equal('device_revoked');
    });
  });
}

/** Runs `check` with a fresh PgBouncer in `mode` and a migrated database, both gone after. */
async function withBouncer(
  ctx: Mocha.Context,
  mode: 'session' | 'transaction',
  check: (bouncer: PgBouncer, db: TestDatabase) => Promise<void>,
): Promise<void> {
  const why = pgbouncerUnavailable();
  if (why) skipBecause(ctx, why);
  const bouncer = await startPgBouncer(mode);
  const db = await createTestDatabase({ migrated: true });
  try {
    await check(bouncer, db);
  } finally {
    await db.drop();
    await bouncer.stop();
  }
}

describe('through a connection pooler', function () {
  this.timeout(120_000);

  it('refuses to start (serve, the CLI) through PgBouncer 1.18 without FLEETGATE_DB_POOLER, naming the setting', async function () {
    await withBouncer(this, 'session', async (bouncer, db) => {
      const env = { ...process.env, ...db.env, DATABASE_URL: bouncer.through(db.url!) };
      // Killed after 30 s: the server retried forever, as if the database were down.
      const ended = await new Promise<{ code: unknown; output: string }>((resolve) => {
        execFile(
          process.execPath,
          [BIN, 'serve', '--port', '0', '--host', '127.0.0.1', '--admin-port', 'off'],
          { env, timeout: 30_000 },
          (error, stdout, stderr) => resolve({ code: error?.code, output: stdout + stderr }),
        );
      });
      expect(ended.code, ended.output).to.equal(1);
      expect(ended.output).to.match(/unsupported startup parameter: options/);
      expect(ended.output).to.match(
        /FLEETGATE_DB_POOLER=session or FLEETGATE_DB_POOLER=transaction/,
      );
      // The CLI, too.
      const listed = await runCli(env as Record<string, string>, ['identity', 'list']);
      expect(listed.code, listed.stderr).to.equal(1);
      expect(listed.stderr).to.match(
        /options: DATABASE_URL leads to a connection pooler .*FLEETGATE_DB_POOLER=session/,
      );
    });
  });

  it('in transaction mode without FLEETGATE_DB_LISTEN_URL, says at start that no news will come', async function () {
    await withBouncer(this, 'transaction', async (bouncer, db) => {
      const server = await startFleetgate(db, {
        DATABASE_URL: bouncer.through(db.url!),
        FLEETGATE_DB_POOLER: 'transaction',
      });
      await server.stop();
      expect(server.output()).to.match(
        /FLEETGATE_DB_POOLER=transaction without FLEETGATE_DB_LISTEN_URL: no device news/,
      );
    });
  });

  // Session mode: each connection of fleetgate holds a server connection for its life,
  // so the bouncer's pool must hold them all (the pool, the DDL and the news connections,
  // the CLI's).
  behindPgBouncer('session', { default_pool_size: '12' }, () => ({
    FLEETGATE_DB_POOLER: 'session',
    FLEETGATE_DB_POOL_SIZE: '5',
  }));
  behindPgBouncer('transaction', { default_pool_size: '3' }, (db) => ({
    FLEETGATE_DB_POOLER: 'transaction',
    FLEETGATE_DB_LISTEN_URL: db.url!,
  }));
});
