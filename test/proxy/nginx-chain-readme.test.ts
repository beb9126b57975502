import path from 'node:path';
import { expect } from 'chai';
import { useFleetgateBehindNginx } from '../support/nginx-suite.js';
import { readmeBlock, runReadmeScript, writeFiles } from '../support/readme-block.js';

/**
 * The README's "Vendor chains behind nginx" block, run as written with bash
 * against fleetgate behind a real nginx: only nginx's prefix and port are this
 * test's, and `npx fleetgate` stands for this checkout's CLI.
 */
describe('README: a vendor chain enrolls behind nginx, run verbatim with bash', function () {
  this.timeout(180_000);
  const front = useFleetgateBehindNginx();

  it('trusts the root only, renders and reloads nginx, and the chip enrolls', async () => {
    const dir = path.join(front.db.workDir, 'chain-readme');
    writeFiles(dir, { 'certs/dev-ca.crt': front.nginx.caPem });
    const script = readmeBlock({ marker: 'chain-behind-nginx' })
      .replaceAll('/tmp/fg-nginx', front.nginx.prefix)
      .replaceAll('--listen 8443', `--listen 127.0.0.1:${front.nginx.port}`)
      .replaceAll('https://localhost:8443', front.nginx.baseUrl);
    const { code, stdout, stderr } = await runReadmeScript(script, {
      cwd: dir,
      env: front.app.env,
    });
    expect(code, `${stdout}\n${stderr}`).to.equal(0);
    expect(stdout).to.contain('"status":"enrolled"');
    expect(stdout).to.contain('"identity":"acme-chips"');
    expect(stdout).to.contain('"name":"chip-0042"');
  });
});
