import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { useFixture } from '../support/fixture.js';
import { BIN, REPO_ROOT } from '../support/fleetgate-process.js';

/**
 * The README's "Owner confirmation" walk-through, run as written: the shell
 * block between its markers goes to bash unchanged except for the port of
 * this test's server, with `npx fleetgate` standing for this checkout's CLI.
 */
describe('README: owner confirmation walk-through, run verbatim with bash', function () {
  this.timeout(180_000);
  const fx = useFixture();

  function readmeBlock(): string {
    const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const begin = readme.indexOf('<!-- owner-confirmation:begin -->');
    const end = readme.indexOf('<!-- owner-confirmation:end -->');
    expect(begin, 'README markers').to.be.greaterThan(-1);
    const fenced = readme.slice(begin, end);
    return fenced.slice(fenced.indexOf('```sh\n') + 6, fenced.lastIndexOf('```'));
  }

  it('confirms and registers a device, which then uploads', async () => {
    const dir = path.join(fx().db.workDir, 'owner-confirmation');
    fs.mkdirSync(path.join(dir, 'certs'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'certs', 'dev-ca.crt'), fx().server.caPem);
    const script = [
      'set -euo pipefail',
      `npx() { if [ "$1" = fleetgate ]; then shift; "${process.execPath}" "${BIN}" "$@"; else command npx "$@"; fi; }`,
      readmeBlock().replaceAll('https://localhost:8443', `https://localhost:${fx().server.port}`),
    ].join('\n');
    const { code, stdout, stderr } = await new Promise<{
      code: number;
      stdout: string;
      stderr: string;
    }>((resolve) => {
      execFile(
        'bash',
        ['-c', script],
        { cwd: dir, env: { ...process.env, ...fx().server.env } },
        (error, out, err) =>
          resolve({ code: error ? Number(error.code ?? 1) : 0, stdout: out, stderr: err }),
      );
    });
    expect(code, `${stdout}\n${stderr}`).to.equal(0);
    expect(stdout).to.contain('"status":"PENDING_USER_CONFIRMATION"');
    expect(stdout).to.match(/confirmed registration [0-9a-f]{32}/);
    expect(stdout).to.contain('"status":"REGISTERED"');
    expect(stdout).to.contain('"identity":"home"');
    expect(stdout).to.contain('{"series":{"temperature":{"stored":1,"duplicates":0}}');
  });
});
