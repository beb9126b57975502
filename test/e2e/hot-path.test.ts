import crypto from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import express from 'express';
import helmet from 'helmet';
import { sql } from 'kysely';
import pg from 'pg';
import pino from 'pino';
import { loadConfig } from '../../src/config/config.js';
import { openDatabase, type DatabaseHandle } from '../../src/db/connect.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { prepareOnPostgres, PreparingClient } from '../../src/db/prepared-statements.js';
import { findDeviceByFingerprint } from '../../src/devices/device.repository.js';
import { securityHeaders } from '../../src/http/security-headers.js';

/** PostgreSQL of the run, or the machine's when the suite runs on the embedded database. */
const SERVER_URL = process.env.DATABASE_URL || 'postgres://root@127.0.0.1:5432/postgres';

/**
 * What the device endpoint's hot path does to save work on every request,
 * checked to really happen and to change nothing a client can see.
 */
describe('hot path: prepared statements and precomputed security headers', function () {
  this.timeout(120_000);

  describe('statements prepared once per connection (real PostgreSQL)', () => {
    const name = `fleetgate_hot_${crypto.randomBytes(4).toString('hex')}`;
    let database: DatabaseHandle | undefined;

    after(async () => {
      await database?.close();
      const admin = new pg.Client({ connectionString: SERVER_URL });
      await admin.connect();
      await admin.query(`drop database if exists ${name} with (force)`);
      await admin.end();
    });

    it('sends a registered text by name, other texts unnamed, with the same answers', async () => {
      const pool = new pg.Pool({ connectionString: SERVER_URL, max: 1, Client: PreparingClient });
      try {
        const text = `select $1::int + 1 as n /* ${name} */`;
        prepareOnPostgres(`${name}_plus_one`, text);
        for (const v of [1, 41]) {
          expect((await pool.query(text, [v])).rows).to.deep.equal([{ n: v + 1 }]);
        }
        expect((await pool.query('select $1::int * 2 as n', [4])).rows).to.deep.equal([{ n: 8 }]);
        const prepared = await pool.query<{ name: string; statement: string }>(
          'select name, statement from pg_prepared_statements',
        );
        expect(prepared.rows).to.deep.equal([{ name: `${name}_plus_one`, statement: text }]);
      } finally {
        await pool.end();
      }
    });

    it('refuses one name for two texts and two names for one text', () => {
      prepareOnPostgres(`${name}_a`, 'select 1 /* a */');
      prepareOnPostgres(`${name}_a`, 'select 1 /* a */');
      expect(() => prepareOnPostgres(`${name}_a`, 'select 2 /* a */')).to.throw(/two statements/);
      expect(() => prepareOnPostgres(`${name}_b`, 'select 1 /* a */')).to.throw(/already/);
    });

    it('looks a device up with the prepared device lookup, on the pool of openDatabase', async () => {
      const admin = new pg.Client({ connectionString: SERVER_URL });
      await admin.connect();
      await admin.query(`create database ${name}`);
      await admin.end();
      const url = new URL(SERVER_URL);
      url.pathname = `/${name}`;
      database = await openDatabase(
        loadConfig({
          DATABASE_URL: url.toString(),
          FLEETGATE_DB_POOL_SIZE: '1',
          FLEETGATE_DATA_DIR: '/nonexistent',
        }),
        pino({ level: 'silent' }),
      );
      await migrateToLatest(database.db as never);
      await sql`insert into identities (name) values ('hot')`.execute(database.db);
      await sql`insert into psks (identity_id, secret_hash, prefix) values (1, '\\x01', 'p')`.execute(
        database.db,
      );
      await sql`insert into devices (identity_id, psk_id) values (1, 1)`.execute(database.db);
      const fingerprint = 'ab'.repeat(32);
      await sql`
        insert into certificate_fingerprints (fingerprint, device_id) values (${fingerprint}, 1)
      `.execute(database.db);
      await sql`
        insert into device_certificates
          (device_id, fingerprint, subject, issuer, serial_number, not_before, not_after, state)
        values (1, ${fingerprint}, 'CN=hot', 'CN=hot', '01', now() - interval '1 day', now() + interval '1 day', 'active')
      `.execute(database.db);
      expect(await findDeviceByFingerprint(database.db, 'cd'.repeat(32))).to.equal(undefined);
      const found = await findDeviceByFingerprint(database.db, fingerprint);
      expect(found).to.include({ deviceId: 1, identityName: 'hot', certificateState: 'active' });
      await sql`update devices set revoked_at = now() where id = 1`.execute(database.db);
      // The same prepared statement sees the change at once (nothing is cached but the plan).
      expect((await findDeviceByFingerprint(database.db, fingerprint))?.revokedAt).to.be.instanceOf(
        Date,
      );
      const names = await sql<{ name: string }>`select name from pg_prepared_statements`.execute(
        database.db,
      );
      expect(names.rows.map((r) => r.name)).to.include('fleetgate_device_by_fingerprint');
    });
  });

  describe('security headers', () => {
    async function headersOf(use: express.RequestHandler): Promise<Headers> {
      const app = express();
      app.disable('x-powered-by');
      app.use(use);
      app.get('/', (_req, res) => res.json({ ok: true }));
      const server = app.listen(0, '127.0.0.1');
      await new Promise((resolve) => server.once('listening', resolve));
      try {
        const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
        await res.text();
        return res.headers;
      } finally {
        server.close();
      }
    }

    it('are exactly the headers helmet sets, worked out once', async () => {
      const ours = await headersOf(securityHeaders());
      const theirs = await headersOf(helmet());
      const list = (h: Headers) =>
        [...h.entries()].filter(([k]) => !['date', 'etag', 'keep-alive'].includes(k));
      expect(list(ours)).to.deep.equal(list(theirs));
      expect(ours.get('strict-transport-security')).to.match(/max-age=\d+/);
      expect(ours.get('x-content-type-options')).to.equal('nosniff');
      expect(ours.get('content-security-policy')).to.contain("default-src 'self'");
      expect(ours.has('x-powered-by')).to.equal(false);
    });
  });
});
