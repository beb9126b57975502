import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { curl } from '../support/curl.js';
import { newDevice, type DeviceClient } from '../support/device-client.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import { countStoredPoints, expectJsonError, storedPoints } from '../support/stored-points.js';

const T0 = 1_764_500_000_000;

/** Issue 13: POST /device_endpoint/messages, through the ingest path of uploads. */
describe('JSON messages over HTTPS', () => {
  const fx = useFixture({
    FLEETGATE_MAX_MESSAGE_FIELDS: '5',
    FLEETGATE_MAX_MESSAGE_BYTES: '4096',
    FLEETGATE_MAX_MESSAGES: '20',
    FLEETGATE_MAX_SERIES_PER_DEVICE: '6',
  });

  const post = (client: DeviceClient, body: unknown, contentType = 'application/json') =>
    client.send(
      'POST',
      typeof body === 'string' ? body : JSON.stringify(body),
      { 'content-type': contentType },
      '/device_endpoint/messages',
    );

  it('stores one message: every numeric field of data is a point of that series', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('one'));
    const answer = await post(client, { ts: T0, data: { temperature: 21.5, humidity: 40 } });
    expect(answer.status, answer.text).to.equal(200);
    expect(answer.json).to.deep.equal({
      series: { temperature: { stored: 1, duplicates: 0 }, humidity: { stored: 1, duplicates: 0 } },
      stored: 2,
      duplicates: 0,
    });
    expect(answer.headers['ratelimit']).to.be.a('string');
    expect(await storedPoints(fx().db, fx().server, device, 'temperature')).to.deep.equal([
      [T0, 21.5],
    ]);
    expect(await storedPoints(fx().db, fx().server, device, 'humidity')).to.deep.equal([[T0, 40]]);
  });

  it('stores an array (a backlog) and counts a retry as duplicates, storing nothing twice', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('array'));
    const backlog = [
      { ts: T0, data: { t: 1 } },
      { ts: T0 + 1000, data: { t: 2, h: 50 } },
      { ts: T0 + 2000, data: { t: -0.125 } },
    ];
    const first = await post(client, backlog);
    expect(first.json).to.deep.equal({
      series: { t: { stored: 3, duplicates: 0 }, h: { stored: 1, duplicates: 0 } },
      stored: 4,
      duplicates: 0,
    });
    const retry = await post(client, backlog);
    expect(retry.status).to.equal(200);
    expect(retry.json).to.deep.equal({
      series: { t: { stored: 0, duplicates: 3 }, h: { stored: 0, duplicates: 1 } },
      stored: 0,
      duplicates: 4,
    });
    expect(await storedPoints(fx().db, fx().server, device, 't')).to.deep.equal([
      [T0, 1],
      [T0 + 1000, 2],
      [T0 + 2000, -0.125],
    ]);
  });

  it('keeps the first value of a timestamp repeated within one batch, as uploads do', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('repeat'));
    const answer = await post(client, [
      { ts: T0, data: { s: 1 } },
      { ts: T0, data: { s: 2 } },
    ]);
    expect(answer.json.series.s).to.deep.equal({ stored: 1, duplicates: 1 });
    expect(await storedPoints(fx().db, fx().server, device, 's')).to.deep.equal([[T0, 1]]);
  });

  it('uses the server time when ts is missing', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('nots'));
    const before = Date.now();
    const answer = await post(client, { data: { v: 7 } });
    const after = Date.now();
    expect(answer.status, answer.text).to.equal(200);
    const [[ts, value]] = (await storedPoints(fx().db, fx().server, device, 'v')) as [
      [number, number],
    ];
    expect(value).to.equal(7);
    expect(ts).to.be.within(before, after);
  });

  it('answers exactly like an upload for the same points (the one ingest path)', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('same'));
    const upload = await client.upload([{ name: 'x', content: `${T0},1\n${T0 + 1},2\n` }]);
    const messages = await post(client, [
      { ts: T0 + 1, data: { x: 5 } },
      { ts: T0 + 2, data: { x: 3 } },
    ]);
    expect(upload.json.stored).to.equal(2);
    expect(messages.json).to.deep.equal({
      series: { x: { stored: 1, duplicates: 1 } },
      stored: 1,
      duplicates: 1,
    });
    expect(await storedPoints(fx().db, fx().server, device, 'x')).to.deep.equal([
      [T0, 1],
      [T0 + 1, 2],
      [T0 + 2, 3],
    ]);
  });

  // Each refusal: the batch holds a good series first, so "nothing stored" is checked on it.
  const good = { ts: T0, data: { good: 1 } };
  const refusals: Array<[string, string, number, string]> = [
    [
      'a string value',
      JSON.stringify([good, { ts: T0, data: { s: '21.5' } }]),
      400,
      'invalid_value',
    ],
    ['a null value', JSON.stringify([good, { ts: T0, data: { s: null } }]), 400, 'invalid_value'],
    [
      'a boolean value',
      JSON.stringify([good, { ts: T0, data: { s: true } }]),
      400,
      'invalid_value',
    ],
    [
      'an object value',
      JSON.stringify([good, { ts: T0, data: { s: { v: 1 } } }]),
      400,
      'invalid_value',
    ],
    [
      '1e999 (Infinity)',
      `[${JSON.stringify(good)}, {"ts": ${T0}, "data": {"s": 1e999}}]`,
      400,
      'invalid_value',
    ],
    [
      '1e-400 (underflow)',
      `[${JSON.stringify(good)}, {"ts": ${T0}, "data": {"s": 1e-400}}]`,
      400,
      'invalid_value',
    ],
    [
      'a bad series name',
      JSON.stringify([good, { ts: T0, data: { 'bad name': 1 } }]),
      400,
      'invalid_series_name',
    ],
    [
      'an empty series name',
      JSON.stringify([good, { ts: T0, data: { '': 1 } }]),
      400,
      'invalid_series_name',
    ],
    [
      'too many fields',
      JSON.stringify([good, { ts: T0, data: { a: 1, b: 2, c: 3, d: 4, e: 5, f: 6 } }]),
      413,
      'too_many_fields',
    ],
    [
      'too many messages',
      JSON.stringify(Array.from({ length: 21 }, (_, i) => ({ ts: T0 + i, data: { good: i } }))),
      413,
      'too_many_messages',
    ],
    [
      'too large a body',
      JSON.stringify([good, { ts: T0, data: { s: 1 }, pad: 'x'.repeat(5000) }]),
      413,
      'body_too_large',
    ],
    [
      'seconds instead of ms',
      JSON.stringify([good, { ts: 1_764_500_000, data: { s: 1 } }]),
      400,
      'invalid_timestamp',
    ],
    [
      'a fractional ts',
      JSON.stringify([good, { ts: T0 + 0.5, data: { s: 1 } }]),
      400,
      'invalid_timestamp',
    ],
    [
      'a ts too far ahead',
      JSON.stringify([good, { ts: Date.now() + 3 * 86_400_000, data: { s: 1 } }]),
      400,
      'invalid_timestamp',
    ],
    [
      'a string ts',
      JSON.stringify([good, { ts: String(T0), data: { s: 1 } }]),
      400,
      'invalid_timestamp',
    ],
    ['no data', JSON.stringify([good, { ts: T0 }]), 400, 'invalid_message'],
    ['empty data', JSON.stringify([good, { ts: T0, data: {} }]), 400, 'invalid_message'],
    ['data as an array', JSON.stringify([good, { ts: T0, data: [1, 2] }]), 400, 'invalid_message'],
    [
      'an unknown field',
      JSON.stringify([good, { ts: T0, data: { s: 1 }, value: 3 }]),
      400,
      'invalid_message',
    ],
    ['a number as a message', JSON.stringify([good, 42]), 400, 'invalid_message'],
    ['an empty array', '[]', 400, 'empty_batch'],
    ['broken JSON', `[${JSON.stringify(good)}, {"ts": `, 400, 'invalid_json'],
  ];
  for (const [what, body, status, code] of refusals) {
    it(`refuses ${what} with ${status} ${code} and stores nothing`, async () => {
      const { device, client } = await fx().boundDevice(uniqueName('refuse'));
      const answer = await post(client, body);
      expectJsonError(answer, status, code);
      expect(await countStoredPoints(fx().db, fx().server, device, ['good', 's'])).to.equal(0);
    });
  }

  it('takes "__proto__" as a series name like any other', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('proto'));
    const answer = await post(client, `{"ts": ${T0}, "data": {"__proto__": 1}}`);
    expect(answer.status, answer.text).to.equal(200);
    expect(answer.json.series).to.have.own.property('__proto__');
    expect(await storedPoints(fx().db, fx().server, device, '__proto__')).to.deep.equal([[T0, 1]]);
  });

  it('refuses a body that is not JSON with 415', async () => {
    const { client } = await fx().boundDevice(uniqueName('415'));
    expectJsonError(await post(client, 'ts=1', 'text/plain'), 415, 'unsupported_media_type');
  });

  it('refuses a new series over the per-device cap with 422 and stores nothing of the batch', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('cap'));
    const five = { a: 1, b: 1, c: 1, d: 1, e: 1 };
    expect((await post(client, { ts: T0, data: five })).status).to.equal(200);
    const answer = await post(client, [
      { ts: T0 + 1, data: { a: 2 } },
      { ts: T0 + 1, data: { f: 1, g: 1 } },
    ]);
    expectJsonError(answer, 422, 'too_many_series');
    expect(await countStoredPoints(fx().db, fx().server, device, ['a', 'f', 'g'])).to.equal(1);
  });

  it('refuses an unbound, then a revoked device with 403 and stores nothing', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('revoked'));
    const stranger = fx().client(newDevice());
    expectJsonError(await post(stranger, { ts: T0, data: { s: 1 } }), 403, 'certificate_not_bound');
    const revoke = await fx().server.cli(['device', 'revoke', device.fingerprint]);
    expect(revoke.code, revoke.stderr).to.equal(0);
    expectJsonError(await post(client, { ts: T0, data: { s: 1 } }), 403, 'device_revoked');
    expect(await countStoredPoints(fx().db, fx().server, device, ['s'])).to.equal(0);
  });

  it('refuses a request without a client certificate with 401', async () => {
    const anonymous = fx().client(null);
    expectJsonError(
      await post(anonymous, { ts: T0, data: { s: 1 } }),
      401,
      'no_client_certificate',
    );
  });

  it('works verbatim with curl as the README shows', async () => {
    const { device } = await fx().boundDevice(uniqueName('curl'));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fg-msg-'));
    const file = (name: string, text: string) => {
      fs.writeFileSync(path.join(dir, name), text);
      return path.join(dir, name);
    };
    const tls = [
      '--cacert',
      file('ca.crt', fx().server.caPem),
      '--cert',
      file('device.crt', device.certPem),
      '--key',
      file('device.key', device.keyPem),
    ];
    const url = `${fx().server.baseUrl}/device_endpoint/messages`;
    const one = await curl([
      ...tls,
      '-H',
      'Content-Type: application/json',
      '-d',
      '{"ts": 1764500000000, "data": {"temperature": 21.5, "humidity": 40}}',
      url,
    ]);
    expect(one.status, one.text).to.equal(200);
    expect(one.json.stored).to.equal(2);
    const backlog = await curl([
      ...tls,
      '-H',
      'Content-Type: application/json',
      '-d',
      '[{"ts": 1764500060000, "data": {"temperature": 21.7}}, {"data": {"temperature": 21.9}}]',
      url,
    ]);
    expect(backlog.json).to.deep.equal({
      series: { temperature: { stored: 2, duplicates: 0 } },
      stored: 2,
      duplicates: 0,
    });
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('JSON messages share the upload budget', () => {
  const fx = useFixture({
    FLEETGATE_UPLOADS_PER_DEVICE: '2',
    FLEETGATE_UPLOAD_WINDOW_SECONDS: '3600',
  });

  it('answers 429 upload_rate_limited over the budget, before storing anything', async () => {
    const { device, client } = await fx().boundDevice(uniqueName('throttle'));
    const send = (ts: number) =>
      client.send(
        'POST',
        JSON.stringify({ ts, data: { s: 1 } }),
        { 'content-type': 'application/json' },
        '/device_endpoint/messages',
      );
    expect((await client.upload([{ name: 's', content: `${T0},1\n` }])).status).to.equal(200);
    expect((await send(T0 + 1)).status).to.equal(200);
    const over = await send(T0 + 2);
    expectJsonError(over, 429, 'upload_rate_limited');
    expect(over.headers['retry-after']).to.be.a('string');
    expect(await countStoredPoints(fx().db, fx().server, device, ['s'])).to.equal(2);
  });
});
