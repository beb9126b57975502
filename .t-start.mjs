import { createTestDatabase } from './dist/test/support/test-database.js';
import { startFleetgate } from './dist/test/support/fleetgate-process.js';
for (let i = 0; i < 2; i++) {
  let t = performance.now();
  const db = await createTestDatabase();
  const t1 = performance.now();
  const s = await startFleetgate(db);
  const t2 = performance.now();
  const r = await s.cli(['identity', 'create', 'x' + i]);
  const t3 = performance.now();
  await s.stop(); const t4 = performance.now();
  await db.drop(); const t5 = performance.now();
  console.log(`createdb ${(t1-t).toFixed(0)} start ${(t2-t1).toFixed(0)} cli ${(t3-t2).toFixed(0)} code ${r.code} stop ${(t4-t3).toFixed(0)} drop ${(t5-t4).toFixed(0)}`);
  if (r.code) console.log(r.stderr);
}
