import fs from 'node:fs';
import { Session } from 'node:inspector';
import path from 'node:path';

/**
 * Loaded into the server with `NODE_OPTIONS=--import` (where --cpu-prof is
 * not allowed): profiles the whole process and writes a .cpuprofile, which
 * Chrome DevTools or `node dist/bench/profile-summary.js` read, on exit.
 */
const dir = process.env.FLEETGATE_BENCH_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.start');
  process.on('exit', () => {
    // The main-thread inspector session answers synchronously, so this works in 'exit'.
    session.post('Profiler.stop', (err, result) => {
      if (err) return;
      fs.mkdirSync(dir, { recursive: true });
      const file = path.join(dir, `fleetgate-${process.pid}.cpuprofile`);
      fs.writeFileSync(file, JSON.stringify(result.profile));
    });
  });
}
