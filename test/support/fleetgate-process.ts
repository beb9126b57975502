import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestDatabase } from './test-database.js';

/** The repository root, from dist/test/support. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = path.join(REPO_ROOT, 'bin', 'fleetgate.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface FleetgateProcess {
  port: number;
  baseUrl: string;
  /** The development CA the server certificate was issued by. */
  caPem: string;
  env: Record<string, string>;
  child: ChildProcess;
  /** Everything the server wrote to stdout and stderr so far. */
  output(): string;
  cli(args: string[]): Promise<CliResult>;
  stop(): Promise<void>;
}

/** Starts `fleetgate serve` as a real process on a free port and waits until it listens. */
export async function startFleetgate(
  db: TestDatabase,
  extraEnv: Record<string, string> = {},
  args: string[] = [],
): Promise<FleetgateProcess> {
  const env: Record<string, string> = { ...db.env, FLEETGATE_LOG_LEVEL: 'info', ...extraEnv };
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--host', '127.0.0.1', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += String(chunk)));
  child.stderr!.on('data', (chunk) => (output += String(chunk)));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), 30_000);
    const check = () => {
      const match = /"port":(\d+)[^\n]*fleetgate listening/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${output}`));
    });
  });
  const caPem = fs.readFileSync(path.join(env.FLEETGATE_CERTS_DIR!, 'dev-ca.crt'), 'utf8');
  return {
    port,
    baseUrl: `https://localhost:${port}`,
    caPem,
    env,
    child,
    output: () => output,
    cli: (cliArgs) => runCli(env, cliArgs),
    stop: () => stopProcess(child),
  };
}

export function runCli(env: Record<string, string>, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, ...env }, maxBuffer: 256 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}
