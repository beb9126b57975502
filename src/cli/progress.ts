import fs from 'node:fs';
import type { Writable } from 'node:stream';
import cliProgress from 'cli-progress';

/** A progress display; the no-op one when nothing is to be drawn. */
export interface Progress {
  start(total: number): void;
  update(done: number): void;
  stop(): void;
}

const silent: Progress = { start() {}, update() {}, stop() {} };

/**
 * Whether a long job may draw a progress bar. The bar goes to stderr, and only
 * when a person watches: stderr is a terminal, the output is the process's own
 * stdout (not a command run by the server for this CLI) going to the terminal
 * or into a file (`fleetgate export ... > file`), never through a pipe to
 * another program, and never with --json.
 */
export function wantsProgress(out: Writable, json: boolean): boolean {
  if (json || out !== process.stdout || !process.stderr.isTTY) return false;
  if (process.stdout.isTTY) return true;
  try {
    return fs.fstatSync(1).isFile();
  } catch {
    return false;
  }
}

/**
 * A cli-progress bar on stderr for `label`; with `total` 0 (unknown), a
 * running count. Cleared when the job ends so the terminal keeps only results.
 */
export function progressBar(out: Writable, json: boolean, label: string, unit: string): Progress {
  if (!wantsProgress(out, json)) return silent;
  let bar: cliProgress.SingleBar | null = null;
  let total = 0;
  return {
    start(t) {
      total = t;
      bar = new cliProgress.SingleBar(
        {
          stream: process.stderr,
          clearOnComplete: true,
          hideCursor: true,
          format:
            total > 0
              ? `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | {duration_formatted}`
              : `${label} {value} ${unit} | {duration_formatted}`,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total, 0);
    },
    update(done) {
      if (!bar) this.start(0);
      if (total === 0) bar!.setTotal(done);
      bar!.update(done);
    },
    stop() {
      bar?.stop();
      bar = null;
    },
  };
}
