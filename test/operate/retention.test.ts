import { expect } from 'chai';
import { useFixture, uniqueName } from '../support/fixture.js';
import { storedPoints } from '../support/stored-points.js';

describe('operate: fleetgate retention --older-than', () => {
  const fixture = useFixture();

  it('shows the whole months past the horizon, deletes them only with --yes, keeps the rest', async () => {
    const { server, db } = fixture();
    const { device, client } = await fixture().boundDevice(uniqueName('retention'));
    const jan2020 = Date.UTC(2020, 0, 15);
    const feb2020 = Date.UTC(2020, 1, 15);
    const recent = Date.now() - 24 * 3_600_000;
    const file = `${jan2020},1\n${jan2020 + 1000},2\n${feb2020},3\n${recent},4\n`;
    expect((await client.upload([{ name: 'temp', content: file }])).status).to.equal(200);

    const shown = await server.cli(['retention', '--older-than', '400d']);
    expect(shown.code, shown.stderr).to.equal(0);
    expect(shown.stdout).to.match(/^PARTITION\s+MONTH\s+POINTS\s+BYTES\n/);
    expect(shown.stdout).to.match(/points_2020_01\s+2020-01\s+2\s+\d+/);
    expect(shown.stdout).to.match(/points_2020_02\s+2020-02\s+1\s+\d+/);
    expect(shown.stdout).to.not.match(/points_20(2[5-9])_/); // the recent month stays
    expect(shown.stdout).to.match(/would delete 3 points in 2 month\(s\).*--yes/);
    expect(await storedPoints(db, server, device, 'temp')).to.have.length(4);

    const asJson = JSON.parse(
      (await server.cli(['retention', '--older-than', '400d', '--json'])).stdout,
    );
    expect(asJson).to.deep.include({ rows: 3, applied: false });
    expect(asJson.partitions.map((p: { name: string }) => p.name)).to.deep.equal([
      'points_2020_01',
      'points_2020_02',
    ]);

    const applied = await server.cli(['retention', '--older-than', '400d', '--yes']);
    expect(applied.code, applied.stderr).to.equal(0);
    expect(applied.stdout).to.match(/deleted 3 points in 2 month\(s\)/);
    expect(await storedPoints(db, server, device, 'temp')).to.deep.equal([[recent, 4]]);
    const audit = JSON.parse(
      (await server.cli(['audit', '--action', 'points.retention', '--json'])).stdout,
    );
    expect(audit.events).to.have.length(2);

    // A late point for an emptied month is still stored (no missing partition, no 5xx).
    const late = await client.upload([{ name: 'temp', content: `${jan2020 + 5000},9\n` }]);
    expect(late.status, late.text).to.equal(200);
    expect(late.json.stored).to.equal(1);

    const nothing = await server.cli(['retention', '--older-than', '3000d']);
    expect(nothing.stdout).to.match(/nothing to delete/);
    const bad = await server.cli(['retention', '--older-than', 'forever']);
    expect(bad.code).to.equal(1);
    expect(bad.stderr).to.match(/not a duration/);
  });
});
