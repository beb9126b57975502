import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { BIN, REPO_ROOT, startFleetgate } from '../support/fleetgate-process.js';
import {
  skipUnlessNginx,
  startBehindNginx,
  type ProxiedFleetgate,
} from '../support/nginx-front.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';

/**
 * The README's "Vendor chains behind nginx" block, run as written with bash
 * against fleetgate behind a real nginx: only nginx's prefix and port are this
 * test's, and `npx fleetgate` stands for this checkout's CLI.
 */
describe('README: a vendor chain enrolls behind nginx, run verbatim with bash', function () {
  this.timeout(180_000);
  let db: TestDatabase;
  let front: ProxiedFleetgate;

  before(async function () {
    skipUnlessNginx(this);
    db = await createTestDatabase({ migrated: true });
    front = await startBehindNginx((env) => startFleetgate(db, env), db.workDir);
  });
  after(async () => {
    await front?.stop();
    await db?.drop();
  });

  function readmeBlock(): string {
    const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const begin = readme.indexOf('<!-- chain-behind-nginx:begin -->');
    const end = readme.indexOf('<!-- chain-behind-nginx:end -->');
    expect(begin, 'README markers').to.be.greaterThan(-1);
    const fenced = readme.slice(begin, end);
    return fenced.slice(fenced.indexOf('```sh\n') + 6, fenced.lastIndexOf('```'));
  }

  it('trusts the root only, renders and reloads nginx, and the chip enrolls', async () => {
    const dir = path.join(db.workDir, 'chain-readme');
    fs.mkdirSync(path.join(dir, 'certs'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'certs', 'dev-ca.crt'), front.nginx.caPem);
    const block = readmeBlock()
      .replaceAll('/tmp/fg-nginx', front.nginx.prefix)
      .replaceAll('--listen 8443', `--listen 127.0.0.1:${front.nginx.port}`)
      .replaceAll('https://localhost:8443', front.nginx.baseUrl);
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
        { cwd: dir, env: { ...process.env, ...front.app.env } },
        (error, out, err) =>
          resolve({ code: error ? Number(error.code ?? 1) : 0, stdout: out, stderr: err }),
      );
    });
    expect(code, `${stdout}\n${stderr}`).to.equal(0);
    expect(stdout).to.contain('"status":"enrolled"');
    expect(stdout).to.contain('"identity":"acme-chips"');
    expect(stdout).to.contain('"name":"chip-0042"');
  });
});
