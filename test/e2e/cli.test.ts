import { expect } from 'chai';
import { startFleetgate, runCli } from '../support/fleetgate-process.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';
import { DeviceClient, newDevice } from '../support/device-client.js';
import { serverLogCaughtUp } from '../support/server-log.js';

describe('serve and migrate', () => {
  let db: TestDatabase;
  beforeEach(async () => (db = await createTestDatabase()));
  afterEach(async () => db.drop());

  it('`migrate` applies the schema once; `serve --no-migrate` then starts on it', async () => {
    const first = await runCli(db.env, ['migrate']);
    expect(first.code, first.stderr).to.equal(0);
    expect(first.stdout).to.match(/^applied: /);
    const second = await runCli(db.env, ['migrate']);
    expect(second.stdout).to.equal('schema is up to date\n');
    const server = await startFleetgate(db, {}, ['--no-migrate']);
    try {
      await serverLogCaughtUp(server);
      expect(server.output()).not.to.contain('database schema is up to date');
      const psk = await server
        .cli(['identity', 'create', 'm'])
        .then(() => server.cli(['psk', 'issue', 'm']));
      const client = new DeviceClient(server, newDevice());
      expect((await client.bind(psk.stdout.trim())).status).to.equal(200);
      await client.close();
    } finally {
      await server.stop();
    }
  });

  it('listens on FLEETGATE_PORT when no --port is given', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const { spawn } = await import('node:child_process');
    const { BIN } = await import('../support/fleetgate-process.js');
    const child = spawn(process.execPath, [BIN, 'serve', '--host', '127.0.0.1'], {
      env: { ...process.env, ...db.env, FLEETGATE_PORT: String(port) },
    });
    let output = '';
    child.stdout.on('data', (c) => (output += String(c)));
    child.stderr.on('data', (c) => (output += String(c)));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(output)), 30_000);
        child.stdout.on('data', () => {
          if (output.includes('fleetgate listening')) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      expect(output).to.contain(`"port":${port}`);
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  });
});
