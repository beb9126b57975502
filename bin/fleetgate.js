#!/usr/bin/env node
// The compiled CLI; `npm install` / `npm ci` build dist/ through the prepare script.
import('../dist/src/cli/main.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/src/cli')) {
    process.stderr.write('fleetgate: not built yet; run `npm run build` first\n');
  } else {
    process.stderr.write(`fleetgate: ${err && err.stack ? err.stack : err}\n`);
  }
  process.exit(1);
});
