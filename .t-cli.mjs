import { createTestDatabase } from './dist/test/support/test-database.js';
import { startFleetgate, runCli } from './dist/test/support/fleetgate-process.js';
const db = await createTestDatabase({ migrated: true });
const s = await startFleetgate(db);
for (let i = 0; i < 3; i++) {
  for (const [label, bin] of [['old', '/tmp/ciops/base/bin/fleetgate.js'], ['new', './bin/fleetgate.js']]) {
    const t = performance.now();
    const r = await new Promise((res) => import('node:child_process').then(({ execFile }) => execFile(process.execPath, [bin, 'identity', 'create', `${label}${i}`], { env: { ...process.env, ...s.env } }, (e, o, er) => res({ e, er }))));
    console.log(label, (performance.now() - t).toFixed(0), r.e ? r.er : 'ok');
  }
}
await s.stop(); await db.drop();
