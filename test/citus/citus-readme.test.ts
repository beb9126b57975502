import { expect } from 'chai';
import { createCitusTestDatabase, useCitusCluster } from '../support/citus-cluster.js';
import { readmeBlock, runReadmeScript, shownLines } from '../support/readme-block.js';
import type { TestDatabase } from '../support/test-database.js';

/**
 * The README's "On Citus" block, run as written with bash against a real
 * coordinator and two workers: only the database URL is this test's (a
 * database made on every node as the README's "Before" says), and
 * `npx fleetgate` stands for this checkout's CLI.
 */
describe('README: fleetgate migrate distributes the schema on Citus, run verbatim with bash', function () {
  this.timeout(180_000);
  let db: TestDatabase | undefined;

  useCitusCluster();
  before(async () => {
    db = await createCitusTestDatabase();
  });
  after(async () => {
    await db?.drop();
  });

  it('migrates (again: it is idempotent) and lists the tables as the README shows', async () => {
    const readme = readmeBlock({ marker: 'citus' });
    const block = readme.replace('postgres://postgres@127.0.0.1:55431/fleetgate', db!.url!);
    expect(block).to.include(db!.url!);
    const { code, stdout, stderr } = await runReadmeScript(block, {
      cwd: db!.workDir,
      env: db!.env,
    });
    expect(code, stderr + stdout).to.equal(0);
    // The comment lines of the block are what psql prints.
    const expected = shownLines(readme, /^\w+\|\w/).map((l) => l.split(/\s+/)[0]);
    expect(expected).to.have.length(4);
    expect(stdout.trim().split('\n').slice(-4)).to.deep.equal(expected);
  });
});
