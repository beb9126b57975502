import { skipBecause } from '../support/skip.js';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { loadConfig } from '../../src/config/config.js';
import { REPO_ROOT } from '../support/fleetgate-process.js';

const UNIT = path.join(REPO_ROOT, 'deploy', 'fleetgate.service');
const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';

function run(cmd: string, args: string[]) {
  return new Promise<{ code: number; out: string }>((resolve) =>
    execFile(cmd, args, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, out: `${stdout}${stderr}` }),
    ),
  );
}

describe('operate: the systemd unit in deploy/', () => {
  const settings = () => {
    const pairs = fs
      .readFileSync(UNIT, 'utf8')
      .split('\n')
      .filter((l) => /^\w+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const);
    return new Map(pairs);
  };

  it('runs as a dedicated user, hardened, and waits out the drain on stop', () => {
    const unit = settings();
    expect(unit.get('User')).to.equal('fleetgate');
    expect(unit.get('NoNewPrivileges')).to.equal('yes');
    expect(unit.get('PrivateTmp')).to.equal('yes');
    expect(unit.get('ProtectSystem')).to.equal('strict');
    expect(unit.get('KillSignal')).to.equal('SIGTERM');
    expect(unit.get('ExecStart')).to.match(/fleetgate\.js serve$/);
    const stopSeconds = Number(unit.get('TimeoutStopSec'));
    expect(stopSeconds * 1000).to.be.greaterThan(loadConfig({}).drainTimeoutMs);
  });

  it('passes systemd-analyze verify and scores OK on exposure', async function () {
    if (!fs.existsSync(SYSTEMD_ANALYZE)) skipBecause(this, `${SYSTEMD_ANALYZE} is not installed`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-unit-'));
    try {
      fs.copyFileSync(UNIT, path.join(dir, 'fleetgate.service'));
      const unitFile = path.join(dir, 'fleetgate.service');
      const verify = await run(SYSTEMD_ANALYZE, ['verify', '--man=no', unitFile]);
      expect(verify.out.trim(), verify.out).to.equal('');
      const security = await run(SYSTEMD_ANALYZE, ['security', '--offline=yes', unitFile]);
      const level = /Overall exposure level for fleetgate\.service: ([\d.]+)/.exec(security.out);
      expect(level, security.out).to.not.equal(null);
      expect(Number(level![1])).to.be.at.most(4.0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
