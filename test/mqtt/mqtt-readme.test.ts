import { expect } from 'chai';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { newDevice } from '../support/device-client.js';
import { BIN, REPO_ROOT } from '../support/fleetgate-process.js';
import { useFixture } from '../support/fixture.js';
import { mqttPortOf } from './mqtt-support.js';

/** The "Talking MQTT" example of README.md, run as written with Debian's mosquitto clients. */
describe('README: Talking MQTT', function () {
  this.timeout(90_000);
  const fx = useFixture({ FLEETGATE_MQTT_PORT: '0' });

  it('works verbatim with mosquitto_pub and mosquitto_sub', async () => {
    const psk = await fx().identityWithPsk('acme');
    const device = newDevice();
    const bound = await fx().client(device).bind(psk);
    expect(bound.status, bound.text).to.equal(200);
    const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const block = /```sh\n(# MQTT: [\s\S]*?)```/.exec(readme);
    expect(block, 'the MQTT example in README.md').to.not.equal(null);
    const expected = /^# (\{"status":1.*\})$/m.exec(block![1]!)![1]!;
    // Only where the test's server listens and how its CLI is started differ.
    const script = block![1]!
      .replace('-p 8883', `-p ${mqttPortOf(fx())}`)
      .replace('npx fleetgate', `node ${BIN}`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fg-mqtt-readme-'));
    fs.mkdirSync(path.join(dir, 'certs'));
    fs.writeFileSync(path.join(dir, 'certs', 'dev-ca.crt'), fx().server.caPem);
    fs.writeFileSync(path.join(dir, 'device.crt'), device.certPem);
    fs.writeFileSync(path.join(dir, 'device.key'), device.keyPem, { mode: 0o600 });
    try {
      const stdout = await new Promise<string>((resolve, reject) =>
        execFile(
          'bash',
          ['-e', '-c', script],
          { cwd: dir, timeout: 60_000, env: { ...process.env, ...fx().server.env } },
          (err, out, errOut) =>
            err ? reject(new Error(`${err.message}: ${errOut}`)) : resolve(out),
        ),
      );
      const lines = stdout.trim().split('\n');
      expect(lines[0]).to.equal(expected);
      expect(lines[1]).to.match(/^last state:\s+online at \d{4}-\d\d-\d\dT/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
