import { skipBecause } from '../support/skip.js';
import { expect } from 'chai';
import { AdminClient, useFleetgate } from '../support/admin-client.js';
import { runCli } from '../support/fleetgate-process.js';

describe('admin-token reset while FLEETGATE_ADMIN_TOKEN is set', function () {
  this.timeout(120_000);
  const fg = useFleetgate();

  it('is refused with a clear message and a non-zero exit; the configured token keeps working', async () => {
    const reset = await fg.server.cli(['admin-token', 'reset']);
    expect(reset.code).to.not.equal(0);
    expect(reset.stdout).to.equal('');
    expect(reset.stderr).to.match(/FLEETGATE_ADMIN_TOKEN is set/);
    const admin = new AdminClient(fg.server);
    try {
      expect((await admin.get('/v1/identities')).status).to.equal(200);
      const audit = await admin.get('/v1/audit?action=admin_token.reset');
      expect(audit.status, audit.text).to.equal(200);
      expect(audit.json.events).to.deep.equal([]);
    } finally {
      await admin.close();
    }
  });

  it('is refused by a running server on the embedded database that has it set, even if the CLI has not', async function () {
    if (fg.db.url)
      skipBecause(
        this,
        'on PostgreSQL the CLI works on the database directly, not through a server',
      );
    // The same command from a shell without the variable goes through the control socket.
    const reset = await runCli({ ...fg.server.env, FLEETGATE_ADMIN_TOKEN: '' }, [
      'admin-token',
      'reset',
    ]);
    expect(reset.code).to.not.equal(0);
    expect(reset.stdout).to.equal('');
    expect(reset.stderr).to.match(/FLEETGATE_ADMIN_TOKEN is set/);
  });
});
