import path from 'node:path';
import { expect } from 'chai';
import { useFixture } from '../support/fixture.js';
import { readmeBlock, runReadmeScript, writeFiles } from '../support/readme-block.js';

/**
 * The README's "Owner confirmation" walk-through, run as written: the shell
 * block between its markers goes to bash unchanged except for the port of
 * this test's server, with `npx fleetgate` standing for this checkout's CLI.
 */
describe('README: owner confirmation walk-through, run verbatim with bash', function () {
  this.timeout(180_000);
  const fx = useFixture();

  it('confirms and registers a device, which then uploads', async () => {
    const dir = path.join(fx().db.workDir, 'owner-confirmation');
    writeFiles(dir, { 'certs/dev-ca.crt': fx().server.caPem });
    const script = readmeBlock({ marker: 'owner-confirmation' }).replaceAll(
      'https://localhost:8443',
      `https://localhost:${fx().server.port}`,
    );
    const { code, stdout, stderr } = await runReadmeScript(script, {
      cwd: dir,
      env: fx().server.env,
    });
    expect(code, `${stdout}\n${stderr}`).to.equal(0);
    expect(stdout).to.contain('"status":"PENDING_USER_CONFIRMATION"');
    expect(stdout).to.match(/confirmed registration [0-9a-f]{32}/);
    expect(stdout).to.contain('"status":"REGISTERED"');
    expect(stdout).to.contain('"identity":"home"');
    expect(stdout).to.contain('{"series":{"temperature":{"stored":1,"duplicates":0}}');
  });
});
