import { expect } from 'chai';
import { createHash, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { OpensslPki } from '../support/openssl-ca.js';
import { ADMIN_ROUTES } from '../../src/admin/admin.routes.js';
import { AdminClient, boundDevice, useFleetgate } from '../support/admin-client.js';
import { DeviceClient, newDevice } from '../support/device-client.js';
import {
  dumpAllTables,
  expectSecretNowhere,
  sha256Bytea,
  type DumpedCell,
} from '../support/database-dump.js';
import { startFleetgate } from '../support/fleetgate-process.js';
import { opensslKeyPair, proveRotation } from '../support/rotation.js';
import {
  answerValidator,
  documentedOperations,
  servedAdminRoutes,
} from '../support/openapi-check.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';
import { serverLogCaughtUp } from '../support/server-log.js';

describe('admin API: authentication and the OpenAPI document', () => {
  const fg = useFleetgate();

  it('listens on loopback over plain HTTP by default', () => {
    expect(fg.server.adminUrl).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(fg.server.adminPort).to.be.greaterThan(0);
    expect(fg.server.adminPort).to.not.equal(fg.server.port);
  });

  it('refuses a request without a token with 401 and a Bearer challenge', async () => {
    const anonymous = new AdminClient(fg.server, null);
    try {
      const answer = await anonymous.get('/v1/identities');
      expect(answer.status).to.equal(401);
      expect(answer.json).to.deep.include({ code: 'admin_token_required' });
      expect(answer.headers['www-authenticate']).to.match(/^Bearer /);
      // Unknown paths too: a stranger learns nothing about what exists.
      expect((await anonymous.get('/v1/nothing-here')).status).to.equal(401);
    } finally {
      await anonymous.close();
    }
  });

  it('refuses a wrong token, a token of another length and a malformed header', async () => {
    // The last character changed (to x, or to y when it already was x: 1 run in 64 had the real token).
    const token = fg.server.adminToken;
    const wrong = new AdminClient(
      fg.server,
      `${token.slice(0, -1)}${token.endsWith('x') ? 'y' : 'x'}`,
    );
    const short = new AdminClient(fg.server, 'x');
    try {
      for (const client of [wrong, short]) {
        const answer = await client.get('/v1/identities');
        expect(answer.status).to.equal(401);
        expect(answer.json).to.deep.equal({
          error: 'the admin token is not valid',
          code: 'invalid_admin_token',
        });
      }
      const basic = await fg.admin.get('/v1/identities', {
        authorization: 'Basic YWRtaW46YWRtaW4=',
      });
      expect(basic.status).to.equal(401);
      expect(basic.json.code).to.equal('invalid_authorization');
    } finally {
      await wrong.close();
      await short.close();
    }
  });

  it('accepts the configured token', async () => {
    const answer = await fg.admin.get('/v1/identities');
    expect(answer.status).to.equal(200);
    expect(answer.json).to.deep.equal({ identities: [] });
  });

  it('serves no admin route on the device port, even to a device with a certificate', async () => {
    const device = new DeviceClient(fg.server, newDevice());
    try {
      const answer = await device.send('GET', undefined, {}, '/v1/identities');
      expect(answer.status).to.equal(404);
      expect(answer.json.code).to.equal('not_found');
      const withToken = await device.send(
        'GET',
        undefined,
        { authorization: `Bearer ${fg.server.adminToken}` },
        '/v1/identities',
      );
      expect(withToken.status).to.equal(404);
    } finally {
      await device.close();
    }
  });

  it('answers JSON errors for unknown routes, wrong methods and invalid input', async () => {
    const unknown = await fg.admin.get('/v1/nothing-here');
    expect(unknown.status).to.equal(404);
    expect(unknown.json.code).to.equal('not_found');
    const wrongMethod = await fg.admin.send('DELETE', '/v1/identities');
    expect(wrongMethod.status).to.equal(405);
    expect(wrongMethod.headers.allow).to.equal('GET, POST');
    const form = await fg.admin.send('POST', '/v1/identities', 'name=x', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect(form.status).to.equal(415);
    expect(form.json.code).to.equal('unsupported_media_type');
    const badJson = await fg.admin.post('/v1/identities', '{"name": ');
    expect(badJson.status).to.equal(400);
    expect(badJson.json.code).to.equal('invalid_json');
    const extraField = await fg.admin.post('/v1/identities', { name: 'a', owner: 'b' });
    expect(extraField.status).to.equal(400);
    expect(extraField.json.code).to.equal('invalid_request');
    expect(extraField.json.error).to.match(/owner/);
  });

  it('serves an OpenAPI 3 document, without a token, that describes every served route', async () => {
    const anonymous = new AdminClient(fg.server, null);
    try {
      const answer = await anonymous.get('/openapi.json');
      expect(answer.status).to.equal(200);
      const doc = answer.json;
      expect(doc.openapi).to.match(/^3\./);
      // What the express app routes (its router stack), not the list the document is built from.
      // Health and metrics are for orchestrators and scrapers, documented in the README
      // (Operating fleetgate), not API operations: they must be served, and only they are exempt.
      const operational = ['get /livez', 'get /metrics', 'get /readyz'];
      const all = servedAdminRoutes();
      expect(all).to.include.members(operational);
      // The dashboard's page, assets and browser session are the UI, not API operations.
      const dashboard = (r: string) => r === 'get /' || r.split(' ')[1]!.startsWith('/dashboard/');
      expect(all).to.include.members(['get /', 'post /dashboard/session']);
      const served = all.filter(
        (r) => r !== 'get /openapi.json' && !operational.includes(r) && !dashboard(r),
      );
      expect(served.length).to.be.greaterThan(10);
      expect(documentedOperations(doc).sort()).to.deep.equal([...served].sort());
      // And the running server answers each of them: none is a 404 for the route itself or a 405.
      for (const route of served) {
        const [verb, template] = route.split(' ') as [string, string];
        const path = template
          .replace('{name}', 'no-such-identity')
          .replace('{fingerprint}', 'a'.repeat(64))
          .replace('{id}', '999999');
        const method = verb.toUpperCase() as 'GET' | 'POST' | 'PATCH';
        const reply = await fg.admin.send(method, path, method === 'GET' ? undefined : {});
        expect(reply.json?.code, `${method} ${path}`).to.not.equal('not_found');
        expect(reply.status, `${method} ${path}`).to.not.equal(405);
      }
      const create = doc.paths['/v1/identities'].post;
      expect(create.requestBody.content['application/json'].schema.required).to.deep.equal([
        'name',
      ]);
      const points = doc.paths['/v1/devices/{fingerprint}/points'].get;
      expect(points.parameters.map((p: { name: string }) => p.name)).to.include.members([
        'fingerprint',
        'series',
        'from',
        'to',
        'bucket',
        'limit',
        'cursor',
        'format',
      ]);
    } finally {
      await anonymous.close();
    }
  });
});

describe('admin API: answers match the documented schemas', () => {
  const fg = useFleetgate();

  it('returns, for every JSON route, what the OpenAPI document says', async () => {
    const { admin, server } = fg;
    const psk = await admin.identityWithPsk('documented', 10);
    const device = newDevice();
    const client = await boundDevice(server, device, psk);
    await client.upload([{ name: 'temp', content: '1700000000000,1\n1700000060000,2' }]);
    await client.close();
    // A pending rotation of another device (revoking `device` below would drop it).
    const rotating = newDevice();
    const rotatingClient = await boundDevice(server, rotating, psk);
    const rotation = await proveRotation(rotatingClient, rotating, opensslKeyPair('ec'));
    await rotatingClient.close();
    const rotationId = String(
      (await admin.get('/v1/rotations?identity=documented')).json.rotations[0].id,
    );
    expect(rotation.status).to.equal(202);
    const psks = (await admin.get('/v1/identities/documented/psks')).json.psks;
    const values: Record<string, string> = {
      name: 'documented',
      fingerprint: device.fingerprint,
      id: String(psks[0].id),
    };
    // Issue 11: a CA (made with openssl) and its CRL, and a certificate to replace the device's.
    const pki = new OpensslPki(fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-documented-')));
    pki.root('documented-ca');
    const caPem = fs.readFileSync(pki.file('documented-ca.crt'), 'utf8');
    const crlPem = fs.readFileSync(pki.crl('documented-ca'), 'utf8');
    values.caFingerprint = createHash('sha256')
      .update(new X509Certificate(caPem).raw)
      .digest('hex');
    // Issue 12: a device waiting for its owner, to confirm with its PIN and serial.
    const policy = await admin.send('PATCH', '/v1/identities/documented', {
      requireConfirmation: true,
    });
    expect(policy.status, policy.text).to.equal(200);
    const pending = newDevice();
    const pendingClient = new DeviceClient(server, pending);
    const started = await pendingClient.bind(psk);
    await pendingClient.close();
    expect(started.status, started.text).to.equal(202);
    const serialLast4 = new X509Certificate(pending.certPem).serialNumber.slice(-4).toLowerCase();
    const bodies: Record<string, unknown> = {
      '/v1/identities/:name/registrations/confirm': { pin: started.json.pin, serialLast4 },
      '/v1/identities/:name/cas': { certificate: caPem },
      '/v1/identities/:name/crls': { crl: crlPem },
      '/v1/devices/:fingerprint/replace-cert': { certificate: newDevice().certPem },
    };
    const doc = (await admin.get('/openapi.json')).json;
    let validated = 0;
    // Reads first, then the changes (revocations last, in declaration order).
    const reads = ADMIN_ROUTES.filter((r) => r.method === 'get');
    for (const route of [...reads, ...ADMIN_ROUTES.filter((r) => r.method !== 'get')]) {
      const path = route.path.replace(/:(\w+)/g, (_m, key: string) =>
        key === 'id' && route.path.startsWith('/v1/rotations/') ? rotationId : values[key]!,
      );
      const query = route.path.endsWith('/points') ? '?series=temp' : '';
      const method = route.method.toUpperCase() as 'GET' | 'POST' | 'PATCH';
      const body =
        route.method === 'patch'
          ? { maxDevices: 20 }
          : route.method === 'post' && route.path === '/v1/identities'
            ? { name: 'second' }
            : bodies[route.path];
      const answer = await admin.send(method, `${path}${query}`, body);
      const label = `${method} ${route.path}`;
      expect(answer.status, `${label}: ${answer.text}`).to.be.oneOf([200, 201, 202]);
      // The published document itself, as JSON Schema, strictly: no undocumented field passes.
      const documentedPath = route.path.replace(/:(\w+)/g, '{$1}');
      const validate = answerValidator(doc, route.method, documentedPath, answer.status);
      const errors = validate(answer.json);
      expect(errors, `${label}: ${JSON.stringify(errors)}\n${answer.text}`).to.equal(null);
      // The check can fail: the same answer with one field more is refused.
      if (answer.json && typeof answer.json === 'object' && !Array.isArray(answer.json))
        expect(validate({ ...answer.json, undocumented: 1 }), `${label} + a field`).to.not.equal(
          null,
        );
      validated += 1;
    }
    expect(validated).to.equal(ADMIN_ROUTES.length);
  });
});

function storedTokenHashes(cells: DumpedCell[]): string[] {
  return cells
    .filter((c) => c.table === '"public"."admin_tokens"' && c.column === 'token_hash')
    .map((c) => c.text);
}

describe('admin API: the generated token', () => {
  let db: TestDatabase;

  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => {
    await db?.drop();
  });

  it('is printed once to stderr on first start, never logged, and only its hash is stored', async () => {
    const first = await startFleetgate(db, { FLEETGATE_ADMIN_TOKEN: '' });
    let token!: string;
    let fresh!: string;
    try {
      await serverLogCaughtUp(first);
      const printed = first.output().match(/fgadm_[A-Za-z0-9_-]{43}/g) ?? [];
      expect(printed).to.have.length(1);
      token = printed[0]!;
      expect(first.output()).to.match(/"token":"generated"/);
      const admin = new AdminClient(first, token);
      expect((await admin.get('/v1/identities')).status).to.equal(200);
      await admin.close();
      // Not logged at start, nor by a request that carried it.
      await serverLogCaughtUp(first);
      const logLines = first
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'));
      for (const line of logLines) expect(line).to.not.include(token);
    } finally {
      await first.stop();
    }
    // Stored: exactly SHA-256 of the printed token, and no form of the token anywhere.
    const afterFirst = await dumpAllTables(db);
    expect(storedTokenHashes(afterFirst)).to.deep.equal([sha256Bytea(token)]);
    expectSecretNowhere(afterFirst, token, 'fgadm_');

    const second = await startFleetgate(db, { FLEETGATE_ADMIN_TOKEN: '' });
    try {
      await serverLogCaughtUp(second);
      expect(second.output()).to.not.match(/fgadm_/);
      expect(second.output()).to.match(/"token":"stored"/);
      const admin = new AdminClient(second, token);
      expect((await admin.get('/v1/identities')).status).to.equal(200);

      // A reset from the CLI replaces it at once in the running server.
      const reset = await second.cli(['admin-token', 'reset']);
      expect(reset.code, reset.stderr).to.equal(0);
      expect(reset.stdout.trim()).to.match(/^fgadm_/);
      expect((await admin.get('/v1/identities')).status).to.equal(401);
      const renewed = new AdminClient(second, reset.stdout.trim());
      expect((await renewed.get('/v1/identities')).status).to.equal(200);
      await admin.close();
      await renewed.close();
      fresh = reset.stdout.trim();
      await serverLogCaughtUp(second);
      expect(second.output()).to.not.include(fresh);
    } finally {
      await second.stop();
    }
    const afterReset = await dumpAllTables(db);
    expect(storedTokenHashes(afterReset)).to.include(sha256Bytea(fresh));
    expectSecretNowhere(afterReset, fresh, 'fgadm_');
    expectSecretNowhere(afterReset, token, 'fgadm_');
  });
});

describe('admin API off loopback', () => {
  const fg = useFleetgate({ FLEETGATE_ADMIN_HOST: '0.0.0.0' });

  it('uses TLS with the server certificate and still wants the token, not a device certificate', async () => {
    expect(fg.server.adminUrl).to.match(/^https:\/\/localhost:\d+$/);
    const device = newDevice();
    const withCertOnly = new AdminClient(fg.server, null, {
      cert: device.certPem,
      key: device.keyPem,
    });
    const withToken = new AdminClient(fg.server);
    try {
      const refused = await withCertOnly.get('/v1/identities');
      expect(refused.status).to.equal(401);
      expect(refused.json.code).to.equal('admin_token_required');
      expect((await withToken.get('/v1/identities')).status).to.equal(200);
    } finally {
      await withCertOnly.close();
      await withToken.close();
    }
  });
});

describe('admin API switched off', () => {
  const fg = useFleetgate({ FLEETGATE_ADMIN_PORT: 'off' });

  it('starts without the admin listener; devices and the CLI still work', async () => {
    await serverLogCaughtUp(fg.server);
    expect(fg.server.output()).to.not.match(/admin API listening/);
    const device = new DeviceClient(fg.server, newDevice());
    try {
      expect((await device.send('GET')).json.status).to.equal('unbound');
    } finally {
      await device.close();
    }
    const created = await fg.server.cli(['identity', 'create', 'offline']);
    expect(created.code, created.stderr).to.equal(0);
  });
});
