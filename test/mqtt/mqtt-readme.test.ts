import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { newDevice } from '../support/device-client.js';
import { useFixture } from '../support/fixture.js';
import { readmeBlock, runReadmeScript, shownLines, writeFiles } from '../support/readme-block.js';
import { mqttPortOf } from '../support/mqtt-client.js';

/** The "Talking MQTT" example of README.md, run as written with Debian's mosquitto clients. */
describe('README: Talking MQTT', function () {
  this.timeout(90_000);
  const fx = useFixture({ FLEETGATE_MQTT_PORT: '0' });

  it('works verbatim with mosquitto_pub and mosquitto_sub', async () => {
    const psk = await fx().identityWithPsk('acme');
    const device = newDevice();
    const bound = await fx().client(device).bind(psk);
    expect(bound.status, bound.text).to.equal(200);
    const block = readmeBlock({ startingWith: '# MQTT: ' });
    const expected = shownLines(block, /^\{"status":1.*\}$/)[0];
    expect(expected, 'the answer the README shows').to.be.a('string');
    // Only where the test's server listens differs.
    const script = block.replace('-p 8883', `-p ${mqttPortOf(fx())}`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fg-mqtt-readme-'));
    writeFiles(dir, {
      'certs/dev-ca.crt': fx().server.caPem,
      'device.crt': device.certPem,
      'device.key': { text: device.keyPem, mode: 0o600 },
    });
    try {
      const { code, stdout, stderr } = await runReadmeScript(script, {
        cwd: dir,
        env: fx().server.env,
        timeoutMs: 60_000,
      });
      expect(code, stderr).to.equal(0);
      const lines = stdout.trim().split('\n');
      expect(lines[0]).to.equal(expected);
      expect(lines[1]).to.match(/^last state:\s+online at \d{4}-\d\d-\d\dT/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
