#!/usr/bin/env node
// Compiles TypeScript to dist/ only when a source is newer than the last build.
// `npm install` runs it (prepare), and so does every first `npx fleetgate`
// (npx installs this directory into its cache, which runs prepare again): with
// an up-to-date dist/ that second run must cost milliseconds, not a silent tsc.
// `npm start` runs it too (prestart), so a changed checkout is rebuilt first.
//   --check   exit 0 when dist/ is up to date, 3 when a build is needed; build nothing
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const root = process.cwd();
const INPUT_DIRS = ['src', 'migrations', 'test', 'bench'];
const INPUT_FILES = ['tsconfig.json'];
/** Written last by tsc's run over the whole program; its time is the build's. */
const MARKER = path.join('dist', 'src', 'cli', 'main.js');

function newestInput() {
  let newest = 0;
  const visit = (file) => {
    let stat;
    try {
      stat = fs.statSync(file);
    } catch {
      return;
    }
    if (stat.isDirectory()) {
      for (const entry of fs.readdirSync(file)) visit(path.join(file, entry));
    } else if (/\.(ts|json)$/.test(file)) {
      newest = Math.max(newest, stat.mtimeMs);
    }
  };
  for (const item of [...INPUT_DIRS, ...INPUT_FILES]) visit(path.join(root, item));
  return newest;
}

function builtAt() {
  try {
    return fs.statSync(path.join(root, MARKER)).mtimeMs;
  } catch {
    return -1;
  }
}

const stale = builtAt() < newestInput();
if (process.argv.includes('--check')) process.exit(stale ? 3 : 0);
if (!stale) process.exit(0);
process.stderr.write('fleetgate: compiling TypeScript to dist/ (once after each change)...\n');
const tscBin = createRequire(path.join(root, 'package.json')).resolve('typescript/bin/tsc');
const tsc = spawnSync(process.execPath, [tscBin, '-p', 'tsconfig.json'], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(tsc.status ?? 1);
