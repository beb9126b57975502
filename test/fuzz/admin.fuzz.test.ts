import { expect } from 'chai';
import fc from 'fast-check';
import { AdminClient } from '../support/admin-client.js';
import { DeviceClient, newDevice, type Answer, type TestDevice } from '../support/device-client.js';
import { startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import { bindDevice } from '../support/stored-points.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';

/** Bounded so the suite stays fast; FLEETGATE_FUZZ_RUNS raises it for a longer hunt. */
const RUNS = Number(process.env.FLEETGATE_FUZZ_RUNS ?? 40);
/** Every run has a seed, printed when it fails; FLEETGATE_FUZZ_SEED (and FLEETGATE_FUZZ_PATH) replay it. */
const SEED = Number(process.env.FLEETGATE_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const PATH = process.env.FLEETGATE_FUZZ_PATH;
const b64 = (text: string) => Buffer.from(text).toString('base64url');

/** Numbers as an attacker writes them: huge, negative, fractional, padded, not numbers at all. */
const numberish = fc.oneof(
  fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }).map(String),
  fc.constantFrom(
    '0',
    '-1',
    '1.5',
    '1e3',
    '2147483647',
    '2147483648',
    '4294967296',
    '9223372036854775807',
    '9223372036854775808',
    '9999999999999999999',
    '99999999999999999999',
    '0x10',
    'NaN',
    'Infinity',
    ' 1',
    '',
  ),
  fc.string({ maxLength: 12 }),
);

const duration = fc.oneof(
  fc
    .tuple(fc.oneof(numberish, fc.nat().map(String)), fc.constantFrom('s', 'm', 'h', 'd', 'w', ''))
    .map(([n, unit]) => `${n}${unit}`),
  fc.constantFrom('99999999w', '999999999w', '0s', '1w', '-1d', '5200w', '5300w'),
);

const time = fc.oneof(
  numberish,
  fc.constantFrom(
    '2026-01-01',
    '0000-01-01',
    '9999-12-31T23:59:59Z',
    '275760-09-13',
    '2026-02-30',
    '8640000000000000',
    '8640000000000001',
  ),
);

/** Cursors: random text, base64 of plausible and implausible insides. */
const cursor = fc.oneof(
  numberish,
  fc.string({ maxLength: 40 }),
  fc
    .tuple(fc.constantFrom('raw', '60000', '0', '-1', '999999999999'), numberish)
    .map(([shape, n]) => b64(`${shape}:${n}`)),
  fc.constantFrom(b64('raw:9999999999999999'), b64('raw:8640000000000001'), b64('raw:0')),
);

const anyText = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('\u0000', 'a\u0000b', '%zz', '..', '%2e%2e', 'x'.repeat(5000), '\ud800'),
);

interface Probe {
  method: 'GET' | 'POST' | 'PATCH';
  path: string;
  body?: string;
}

const query = (entries: Array<[string, string | undefined]>) => {
  const kept = entries.filter((e): e is [string, string] => e[1] !== undefined);
  return kept.length ? `?${new URLSearchParams(kept).toString()}` : '';
};
const opt = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
/** Lone surrogates become U+FFFD, as any client would send them. */
const wellFormed = (text: string) => Buffer.from(text).toString();
/** A path segment, encoded, or raw (stray `%zz` and all) where HTTP allows the bytes. */
const segment = (arb: fc.Arbitrary<string>) =>
  fc
    .tuple(arb, fc.boolean())
    .map(([text, raw]) =>
      raw
        ? wellFormed(text).replace(/[^\x21-\x7e]|[#?/]/gu, (c) => encodeURIComponent(c))
        : encodeURIComponent(wellFormed(text)),
    );

function probes(names: string[], fingerprints: string[]): fc.Arbitrary<Probe> {
  const name = fc.oneof(fc.constantFrom(...names), anyText);
  const fingerprint = fc.oneof(
    fc.constantFrom(...fingerprints),
    fc.constantFrom(...fingerprints).map((f) => f.toUpperCase().replace(/(..)(?!$)/g, '$1:')),
    anyText,
  );
  const json = fc.oneof(
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc
      .record(
        {
          name: fc.oneof(name, fc.jsonValue()),
          maxDevices: fc.oneof(fc.jsonValue(), numberish.map(Number)),
          expiresIn: fc.oneof(duration, fc.jsonValue()),
          singleUse: fc.jsonValue(),
          reason: fc.oneof(anyText, fc.jsonValue()),
        },
        { requiredKeys: [] },
      )
      .map((v) => JSON.stringify(v)),
    anyText,
  );
  return fc.oneof(
    fc.record({ method: fc.constant<'GET'>('GET'), path: fc.constant('/v1/identities') }),
    fc.tuple(segment(name), opt(numberish), opt(cursor)).map(([n, limit, c]) => ({
      method: 'GET' as const,
      path: `/v1/identities/${n}/devices${query([
        ['limit', limit],
        ['cursor', c],
      ])}`,
    })),
    fc
      .tuple(segment(name), fc.constantFrom('', '/psks', '/disable', '/enable'), json)
      .chain(([n, tail, body]) =>
        fc.constantFrom<Probe>(
          { method: 'GET', path: `/v1/identities/${n}${tail}` },
          { method: 'POST', path: `/v1/identities/${n}${tail}`, body },
          { method: 'PATCH', path: `/v1/identities/${n}`, body },
        ),
      ),
    json.map((body) => ({ method: 'POST' as const, path: '/v1/identities', body })),
    fc
      .tuple(segment(numberish), opt(json))
      .map(([id, body]) => ({ method: 'POST' as const, path: `/v1/psks/${id}/revoke`, body })),
    fc
      .tuple(segment(fingerprint), fc.constantFrom('', '/series', '/revoke'), opt(json))
      .map(([f, tail, body]) => ({
        method: tail === '/revoke' ? ('POST' as const) : ('GET' as const),
        path: `/v1/devices/${f}${tail}`,
        body: tail === '/revoke' ? body : undefined,
      })),
    fc
      .tuple(
        segment(fingerprint),
        fc.oneof(fc.constant('temp'), anyText),
        opt(time),
        opt(time),
        opt(duration),
        opt(numberish),
        opt(cursor),
        opt(fc.oneof(fc.constantFrom('json', 'csv'), anyText)),
      )
      .map(([f, series, from, to, bucket, limit, c, format]) => ({
        method: 'GET' as const,
        path: `/v1/devices/${f}/points${query([
          ['series', series],
          ['from', from],
          ['to', to],
          ['bucket', bucket],
          ['limit', limit],
          ['cursor', c],
          ['format', format],
        ])}`,
      })),
    fc
      .tuple(opt(name), opt(fingerprint), opt(anyText), opt(numberish), opt(cursor))
      .map(([identity, fp, action, limit, c]) => ({
        method: 'GET' as const,
        path: `/v1/audit${query([
          ['identity', identity],
          ['fingerprint', fp],
          ['action', action],
          ['limit', limit],
          ['cursor', c],
        ])}`,
      })),
  );
}

function expectNo5xx(probe: Probe, answer: Answer) {
  const label = `${probe.method} ${probe.path} ${probe.body ?? ''} -> ${answer.status} ${answer.text.slice(0, 300)}`;
  expect(answer.status, label).to.be.below(500);
  if (answer.status >= 400) {
    expect(answer.headers['content-type'] ?? '', label).to.match(/application\/json/);
    expect(answer.json?.code, label).to.be.a('string');
  }
}

describe('fuzzing the admin API: no input gets a 5xx', function () {
  this.timeout(600_000);
  let db: TestDatabase;
  let server: FleetgateProcess;
  let admin: AdminClient;
  let device: TestDevice;
  let identity: string;
  const clients: DeviceClient[] = [];

  before(async () => {
    db = await createTestDatabase({ migrated: true });
    server = await startFleetgate(db);
    admin = new AdminClient(server);
    device = newDevice();
    const client = new DeviceClient(server, device);
    clients.push(client);
    identity = await bindDevice(server, client).then(async () => {
      const listed = await admin.get('/v1/identities');
      return listed.json.identities[0].name as string;
    });
    const now = Date.now();
    const upload = await client.upload([
      { name: 'temp', content: `${now - 120_000},1\n${now - 60_000},2\n${now},3\n` },
    ]);
    expect(upload.status, upload.text).to.equal(200);
  });
  after(async () => {
    for (const c of clients) await c.close();
    await admin?.close();
    await server?.stop();
    await db?.drop();
  });

  const send = (probe: Probe) =>
    admin.send(probe.method, probe.path, probe.body, {
      ...(probe.body === undefined ? {} : { 'content-type': 'application/json' }),
    });

  it('answers the inputs that gave 500 with 400', async () => {
    const fp = device.fingerprint;
    const cases: Probe[] = [
      { method: 'POST', path: '/v1/psks/9999999999/revoke' },
      { method: 'GET', path: `/v1/identities/${identity}/devices?cursor=9999999999` },
      { method: 'GET', path: '/v1/audit?cursor=9999999999999999999' },
      { method: 'GET', path: `/v1/devices/${fp}/points?series=temp&bucket=999999999w` },
      {
        method: 'GET',
        path: `/v1/devices/${fp}/points?series=temp&cursor=${b64('raw:9999999999999999')}`,
      },
      {
        method: 'POST',
        path: `/v1/identities/${identity}/psks`,
        body: JSON.stringify({ expiresIn: '99999999w' }),
      },
    ];
    const answers: string[] = [];
    for (const probe of cases) {
      const answer = await send(probe);
      answers.push(`${probe.method} ${probe.path} ${answer.status} ${answer.json?.code}`);
      if (answer.status === 400) expectNo5xx(probe, answer);
    }
    expect(answers).to.deep.equal(
      cases.map(
        (probe, i) => `${probe.method} ${probe.path} 400 ${/ \S+$/.exec(answers[i]!)?.[0].trim()}`,
      ),
    );
    for (const line of answers) expect(line).to.match(/ 400 (invalid_\w+)$/);
  });

  it('never answers a generated request with a 5xx', async () => {
    try {
      await fc.assert(
        fc.asyncProperty(probes([identity, 'nobody'], [device.fingerprint]), async (probe) => {
          expectNo5xx(probe, await send(probe));
        }),
        { numRuns: RUNS * 5, seed: SEED, ...(PATH ? { path: PATH } : {}) },
      );
    } catch (error) {
      console.error(`fuzz "admin" failed: replay with FLEETGATE_FUZZ_SEED=${SEED}`);
      throw error;
    }
    expect(server.child.exitCode, server.output()).to.equal(null);
  });
});
