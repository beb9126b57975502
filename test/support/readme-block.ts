import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BIN, REPO_ROOT } from './fleetgate-process.js';

/**
 * Where a ```sh block of README.md stands:
 * - `marker`: the one block between `<!-- marker:begin -->` and `<!-- marker:end -->`;
 * - `heading`: the first block of the section under the heading with this text;
 * - `startingWith`: the one block whose text starts with this.
 */
export type ReadmeBlockAt = { marker: string } | { heading: string } | { startingWith: string };

interface Fenced {
  at: number;
  text: string;
}

/** The text of a ```sh block of README.md (without its fences), exactly as written. */
export function readmeBlock(where: ReadmeBlockAt): string {
  const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const blocks: Fenced[] = [...readme.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => ({
    at: m.index,
    text: m[1]!,
  }));
  let found: Fenced[];
  if ('marker' in where) {
    const begin = readme.indexOf(`<!-- ${where.marker}:begin -->`);
    const end = readme.indexOf(`<!-- ${where.marker}:end -->`);
    if (begin < 0 || end < begin) throw new Error(`README.md: no markers ${where.marker}`);
    found = blocks.filter((b) => b.at > begin && b.at < end);
  } else if ('heading' in where) {
    const heading = new RegExp(`^(#+) ${escapeRegExp(where.heading)}$`, 'm').exec(readme);
    if (!heading) throw new Error(`README.md: no heading "${where.heading}"`);
    const next = new RegExp(`^#{1,${heading[1]!.length}} `, 'gm');
    next.lastIndex = heading.index + heading[0].length;
    const sectionEnd = next.exec(readme)?.index ?? readme.length;
    found = blocks.filter((b) => b.at > heading.index && b.at < sectionEnd).slice(0, 1);
  } else {
    found = blocks.filter((b) => b.text.startsWith(where.startingWith));
  }
  if (found.length !== 1) {
    throw new Error(`README.md: ${found.length} sh blocks at ${JSON.stringify(where)}, not 1`);
  }
  return found[0]!.text;
}

/** The lines of a README block that show output: `# ` comments matching `pattern`, without `# `. */
export function shownLines(block: string, pattern: RegExp): string[] {
  return block
    .split('\n')
    .filter((line) => line.startsWith('# ') && pattern.test(line.slice(2)))
    .map((line) => line.slice(2));
}

export interface BashResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs README text with bash as a reader would, under `set -euo pipefail`, in
 * `cwd` with `env` added to this process's environment. `npx fleetgate`
 * stands for this checkout's CLI (bin/fleetgate.js); other `npx` calls are npx's.
 */
export function runReadmeScript(
  script: string,
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<BashResult> {
  const full = [
    'set -euo pipefail',
    `npx() { if [ "$1" = fleetgate ]; then shift; "${process.execPath}" "${BIN}" "$@"; else command npx "$@"; fi; }`,
    script,
  ].join('\n');
  return new Promise((resolve) => {
    execFile(
      'bash',
      ['-c', full],
      {
        cwd: options.cwd,
        env: { ...process.env, ...options.env },
        timeout: options.timeoutMs ?? 0,
      },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/**
 * Writes the files a README block expects in its working directory (`certs/dev-ca.crt`,
 * `device.key`, ...): a string, or text and mode (keys: 0o600).
 */
export function writeFiles(
  dir: string,
  files: Record<string, string | { text: string; mode: number }>,
): void {
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(dir, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    if (typeof content === 'string') fs.writeFileSync(file, content);
    else fs.writeFileSync(file, content.text, { mode: content.mode });
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
