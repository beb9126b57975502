import { expect } from 'chai';
import { DeviceClient, type TestDevice } from '../support/device-client.js';
import type { FleetgateProcess } from '../support/fleetgate-process.js';
import {
  startWithBoundDevice,
  stopBoundDevice,
  countAllRows,
  expectJsonError,
  expectServerUp,
  storedPoints,
} from '../support/stored-points.js';
import type { TestDatabase } from '../support/test-database.js';

const NOW = Date.now();
const GOOD = `${NOW - 2000},1.5\n${NOW - 1000},2.5\n`;

describe('hostile CSV content', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let server: FleetgateProcess;
  let device: TestDevice;
  let client: DeviceClient;

  before(
    async () =>
      ({ db, server, device, client } = await startWithBoundDevice({
        FLEETGATE_UPLOADS_PER_DEVICE: '0',
      })),
  );
  after(() => stopBoundDevice({ db, server, client }));

  /** A good part first, then the bad one: the good one must be rolled back too. */
  async function expectRefused(content: string | Buffer, status: number, code: string | string[]) {
    const before = await countAllRows(db);
    const answer = await client.upload([
      { name: 'first', content: GOOD },
      { name: 'bad', content },
    ]);
    expectJsonError(answer, status, code);
    expect(await storedPoints(db, server, device, 'first')).to.deep.equal([]);
    expect(await storedPoints(db, server, device, 'bad')).to.deep.equal([]);
    if (before) expect(await countAllRows(db)).to.deep.equal(before);
    await expectServerUp(server, client);
  }

  it('refuses an unterminated quote', () =>
    expectRefused(`${NOW},"1.5\n${NOW + 1},2\n`, 400, 'invalid_line'));

  it('refuses a 1 MB line', () =>
    expectRefused(`${NOW},${'9'.repeat(1024 * 1024)}\n`, 413, 'line_too_long'));

  it('refuses extra columns', () => expectRefused(`${NOW},1.5,7\n`, 400, 'invalid_line'));

  it('refuses empty values', async () => {
    await expectRefused(`${NOW},\n`, 400, 'invalid_line');
    await expectRefused(`,1.5\n`, 400, 'invalid_line');
  });

  for (const value of ['NaN', 'Infinity', '-Infinity', '1e999', '-1e999']) {
    it(`refuses the value ${value}`, () => expectRefused(`${NOW},${value}\n`, 400, 'invalid_line'));
  }

  it('refuses negative and far-future timestamps', async () => {
    await expectRefused(`-1000,1\n`, 400, 'invalid_line');
    await expectRefused(`${NOW + 400 * 24 * 3600 * 1000},1\n`, 400, 'invalid_line');
    await expectRefused(`99999999999999999999,1\n`, 400, 'invalid_line');
  });

  it('refuses non-UTF-8 bytes', () =>
    expectRefused(
      Buffer.concat([Buffer.from(`${NOW},1`), Buffer.from([0xff, 0xfe]), Buffer.from('\n')]),
      400,
      'invalid_line',
    ));

  it('refuses a file with only a header line', () =>
    expectRefused('epoch_ms,value\n', 400, ['invalid_line', 'empty_series']));

  it('keeps the first of duplicate timestamps within one file and counts the rest', async () => {
    const ts = NOW - 5000;
    const answer = await client.upload([
      { name: 'dups', content: `${ts},1\n${ts},2\n${ts + 1},3\n${ts},4\n` },
    ]);
    expect(answer.status, answer.text).to.equal(200);
    expect(answer.json).to.deep.include({ stored: 2, duplicates: 2 });
    expect(answer.json.series.dups).to.deep.equal({ stored: 2, duplicates: 2 });
    expect(await storedPoints(db, server, device, 'dups')).to.deep.equal([
      [ts, 1],
      [ts + 1, 3],
    ]);
  });
});
