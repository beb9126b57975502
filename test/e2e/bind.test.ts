import { expect } from 'chai';
import { DeviceClient, newDevice } from '../support/device-client.js';
import {
  dumpAllTables,
  expectSecretNowhere,
  secretForms,
  sha256Bytea,
} from '../support/database-dump.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import { skipBecause } from '../support/skip.js';
import { startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import {
  createTestDatabase,
  queryTestDatabase,
  type TestDatabase,
} from '../support/test-database.js';
import { serverLogCaughtUp } from '../support/server-log.js';

describe('binding a device certificate with a PSK', () => {
  // These tests make many failed binds from one address on purpose; the
  // throttle has tests of its own (test/hostile/throttle.test.ts).
  const fx = useFixture({ FLEETGATE_BIND_FAILURES_PER_ADDRESS: '0' });

  it('binds a new certificate to the PSK identity (200) and says so', async () => {
    const identity = uniqueName('acme');
    const psk = await fx().identityWithPsk(identity);
    const device = newDevice();
    const answer = await fx().client(device).bind(psk);
    expect(answer.status).to.equal(200);
    expect(answer.json).to.include({ status: 'bound', identity, fingerprint: device.fingerprint });
  });

  it('refuses a wrong PSK with 400 and a JSON error', async () => {
    await fx().identityWithPsk(uniqueName('acme'));
    const answer = await fx()
      .client(newDevice())
      .bind('fgpsk_thisIsNotAValidKeyAtAllButLongEnough12');
    expect(answer.status).to.equal(400);
    expect(answer.json).to.deep.include({ code: 'invalid_psk' });
    expect(answer.json.error).to.be.a('string');
  });

  it('refuses a PSK of the wrong type or a body that is not an object with 400', async () => {
    const client = fx().client(newDevice());
    for (const body of [
      '[]',
      '"fgpsk_x"',
      '{"PSK": 12345}',
      '{"psk": "lowercase-key-name-0000"}',
      'null',
    ]) {
      const answer = await client.send('POST', body, { 'content-type': 'application/json' });
      expect(answer.status, body).to.equal(400);
      expect(answer.json.code, body).to.be.oneOf(['invalid_bind_request', 'invalid_json']);
    }
    const short = await fx().client(newDevice()).bind('short');
    expect(short.status).to.equal(400);
    const malformed = await fx()
      .client(newDevice())
      .send('POST', '{"PSK": ', { 'content-type': 'application/json' });
    expect(malformed.status).to.equal(400);
    expect(malformed.json.code).to.equal('invalid_json');
  });

  it('answers 401 without a client certificate, before looking at the body', async () => {
    const psk = await fx().identityWithPsk(uniqueName('acme'));
    const answer = await fx().client(null).bind(psk);
    expect(answer.status).to.equal(401);
    expect(answer.json.code).to.equal('no_client_certificate');
  });

  it('answers 401 for an expired or not yet valid certificate', async () => {
    const psk = await fx().identityWithPsk(uniqueName('acme'));
    const day = 86_400_000;
    const expired = newDevice({
      notBefore: new Date(Date.now() - 30 * day),
      notAfter: new Date(Date.now() - day),
    });
    const future = newDevice({
      notBefore: new Date(Date.now() + day),
      notAfter: new Date(Date.now() + 30 * day),
    });
    const a = await fx().client(expired).bind(psk);
    expect(a.status).to.equal(401);
    expect(a.json.code).to.equal('certificate_expired');
    const b = await fx().client(future).bind(psk);
    expect(b.status).to.equal(401);
    expect(b.json.code).to.equal('certificate_not_yet_valid');
  });

  it('answers 401 for an RSA key under 2048 bits', async () => {
    const psk = await fx().identityWithPsk(uniqueName('acme'));
    const answer = await fx()
      .client(newDevice({ rsaBits: 1024 }))
      .bind(psk);
    expect(answer.status).to.equal(401);
    expect(answer.json.code).to.equal('weak_key');
  });

  it('never moves a bound certificate to another identity (409)', async () => {
    const first = await fx().identityWithPsk(uniqueName('owner'));
    const second = await fx().identityWithPsk(uniqueName('attacker'));
    const device = newDevice();
    const client = fx().client(device);
    expect((await client.bind(first)).status).to.equal(200);
    const hijack = await client.bind(second);
    expect(hijack.status).to.equal(409);
    expect(hijack.json.code).to.equal('certificate_bound_elsewhere');
  });

  it('treats a repeated bind with a PSK of the same identity as a no-op (200)', async () => {
    const identity = uniqueName('acme');
    const psk = await fx().identityWithPsk(identity);
    const otherPsk = (await fx().server.cli(['psk', 'issue', identity])).stdout.trim();
    const client = fx().client(newDevice());
    const first = await client.bind(psk);
    const again = await client.bind(psk);
    const viaOtherKey = await client.bind(otherPsk);
    expect(first.json.status).to.equal('bound');
    expect(again.status).to.equal(200);
    expect(again.json).to.include({ status: 'already_bound', boundAt: first.json.boundAt });
    expect(viaOtherKey.status).to.equal(200);
    expect(viaOtherKey.json.status).to.equal('already_bound');
  });

  it('holds a PSK device limit under concurrent binds', async () => {
    const psk = await fx().identityWithPsk(uniqueName('limited'), ['--max-devices', '3']);
    const clients = Array.from({ length: 12 }, () => new DeviceClient(fx().server, newDevice()));
    fx().clients.push(...clients);
    const answers = await Promise.all(clients.map((c) => c.bind(psk)));
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses.filter((s) => s === 200)).to.have.length(3);
    expect(statuses.filter((s) => s === 400)).to.have.length(9);
    for (const a of answers.filter((x) => x.status === 400))
      expect(a.json.code).to.equal('psk_exhausted');
    // A device that got in may repeat its bind even though the key is now exhausted.
    const winner = clients[answers.findIndex((a) => a.status === 200)]!;
    expect((await winner.bind(psk)).status).to.equal(200);
  });

  it('refuses an expired PSK with 400', async () => {
    const psk = await fx().identityWithPsk(uniqueName('short-lived'), ['--expires-in', '1s']);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const answer = await fx().client(newDevice()).bind(psk);
    expect(answer.status).to.equal(400);
    expect(answer.json).to.include({ code: 'invalid_psk', error: 'PSK has expired' });
  });

  it('refuses a revoked PSK with 400', async function () {
    if (!fx().db.url)
      skipBecause(this, 'revokes through SQL; the admin API tests revoke on both databases');
    const psk = await fx().identityWithPsk(uniqueName('revoked'));
    await queryTestDatabase(fx().db, 'update psks set revoked_at = now() where prefix = $1', [
      psk.slice(0, 12),
    ]);
    const answer = await fx().client(newDevice()).bind(psk);
    expect(answer.status).to.equal(400);
    expect(answer.json.error).to.equal('PSK has been revoked');
  });
});

describe('binding: what is stored of a PSK', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let server: FleetgateProcess | undefined;

  before(async () => {
    db = await createTestDatabase({ migrated: true });
  });
  after(async () => {
    await server?.stop();
    await db?.drop();
  });

  it('stores only the SHA-256 of the PSK, nowhere the PSK itself, and never logs it', async () => {
    server = await startFleetgate(db, { FLEETGATE_BIND_FAILURES_PER_ADDRESS: '0' });
    const identity = uniqueName('secret');
    expect((await server.cli(['identity', 'create', identity])).code).to.equal(0);
    const psk = (await server.cli(['psk', 'issue', identity])).stdout.trim();
    expect(psk).to.match(/^fgpsk_[A-Za-z0-9_-]{43}$/);
    const good = new DeviceClient(server, newDevice());
    const wrong = new DeviceClient(server, newDevice());
    try {
      expect((await good.bind(psk)).status).to.equal(200);
      expect((await wrong.bind(`${psk}x`)).status).to.equal(400);
    } finally {
      await good.close();
      await wrong.close();
    }
    // Read once every line of the binds is in: after stop() alone, the last lines
    // may not have been read yet (the 'exit' event can come before stdout ends).
    await serverLogCaughtUp(server);
    await server.stop();
    for (const form of secretForms(psk, 'fgpsk_')) expect(server.output()).not.to.contain(form);
    // Every column of every table, read after the server is gone (the embedded one too).
    const cells = await dumpAllTables(db);
    const hashes = cells
      .filter((c) => c.table === '"public"."psks"' && c.column === 'secret_hash')
      .map((c) => c.text);
    expect(hashes).to.deep.equal([sha256Bytea(psk)]);
    expectSecretNowhere(cells, psk, 'fgpsk_');
    expectSecretNowhere(cells, `${psk}x`, 'fgpsk_');
  });
});
