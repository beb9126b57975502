import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import {
  citusCluster,
  citusUnavailable,
  createCitusTestDatabase,
} from '../support/citus-cluster.js';
import { BIN, REPO_ROOT } from '../support/fleetgate-process.js';
import { skipBecause } from '../support/skip.js';
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

  before(async function () {
    this.timeout(180_000);
    if (!process.env.DATABASE_URL) {
      skipBecause(this, 'the Citus suite runs once, in the PostgreSQL run of the tests');
    }
    const why = await citusUnavailable();
    if (why) skipBecause(this, why);
    await citusCluster();
    db = await createCitusTestDatabase();
  });
  after(async () => {
    await db?.drop();
  });

  function readmeBlock(): string {
    const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const begin = readme.indexOf('<!-- citus:begin -->');
    const end = readme.indexOf('<!-- citus:end -->');
    expect(begin, 'README markers').to.be.greaterThan(-1);
    const fenced = readme.slice(begin, end);
    return fenced.slice(fenced.indexOf('```sh\n') + 6, fenced.lastIndexOf('```'));
  }

  it('migrates (again: it is idempotent) and lists the tables as the README shows', async () => {
    const block = readmeBlock().replace('postgres://postgres@127.0.0.1:55431/fleetgate', db!.url!);
    expect(block).to.include(db!.url!);
    const script = [
      'set -euo pipefail',
      `npx() { if [ "$1" = fleetgate ]; then shift; "${process.execPath}" "${BIN}" "$@"; else command npx "$@"; fi; }`,
      block,
    ].join('\n');
    const { code, stdout, stderr } = await new Promise<{
      code: number;
      stdout: string;
      stderr: string;
    }>((resolve) => {
      execFile(
        'bash',
        ['-c', script],
        { cwd: db!.workDir, env: { ...process.env, ...db!.env } },
        (error, out, err) =>
          resolve({ code: error ? Number(error.code ?? 1) : 0, stdout: out, stderr: err }),
      );
    });
    expect(code, stderr + stdout).to.equal(0);
    // The comment lines of the block are what psql prints.
    const expected = readmeBlock()
      .split('\n')
      .filter((l) => /^# \w+\|\w/.test(l))
      .map((l) => l.slice(2).split(/\s+/)[0]);
    expect(expected).to.have.length(4);
    expect(stdout.trim().split('\n').slice(-4)).to.deep.equal(expected);
  });
});
