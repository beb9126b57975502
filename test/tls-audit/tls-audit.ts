/**
 * `npm run tls-audit [-- HOST:PORT]`: runs Debian's testssl.sh against a
 * running fleetgate (or, without an argument, against one it starts on a
 * throwaway embedded database) and fails unless the server offers TLS 1.2 and
 * 1.3 only, no weak cipher category, no client-initiated renegotiation, and
 * testssl flags no vulnerability.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startFleetgate, type FleetgateProcess } from '../support/fleetgate-process.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';

interface Finding {
  id: string;
  severity: string;
  finding: string;
}

const MUST_NOT_BE_OFFERED = [
  'SSLv2',
  'SSLv3',
  'TLS1',
  'TLS1_1',
  'cipherlist_NULL',
  'cipherlist_aNULL',
  'cipherlist_EXPORT',
  'cipherlist_LOW',
  'cipherlist_3DES_IDEA',
  'cipherlist_AVERAGE',
  'cipherlist_OBSOLETED',
];
const MUST_BE_OFFERED = ['TLS1_2', 'TLS1_3'];
const BAD_SEVERITIES = new Set(['LOW', 'MEDIUM', 'HIGH', 'CRITICAL']);

function runTestssl(target: string, jsonFile: string): Promise<void> {
  const args = [
    '--quiet',
    '--color',
    '0',
    '--warnings',
    'off',
    '-p',
    '-s',
    '-R',
    '-U',
    '--ip',
    '127.0.0.1',
    '--jsonfile',
    jsonFile,
    target,
  ];
  return new Promise((resolve, reject) => {
    const child = execFile('testssl', args, { maxBuffer: 64 * 1024 * 1024 }, (err) => {
      // testssl exits non-zero when it finds problems; the JSON decides.
      if (err && !fs.existsSync(jsonFile)) reject(err);
      else resolve();
    });
    child.stdout?.pipe(process.stdout);
    child.stderr?.pipe(process.stderr);
  });
}

export function evaluate(findings: Finding[]): string[] {
  const problems: string[] = [];
  const byId = new Map(findings.map((f) => [f.id, f]));
  for (const id of MUST_NOT_BE_OFFERED) {
    const f = byId.get(id);
    if (f && !/^not offered/i.test(f.finding)) problems.push(`${id}: ${f.finding}`);
  }
  for (const id of MUST_BE_OFFERED) {
    const f = byId.get(id);
    if (!f || !/^offered/i.test(f.finding)) problems.push(`${id}: ${f?.finding ?? 'not tested'}`);
  }
  const reneg = byId.get('secure_client_renego');
  if (!reneg || !/not vulnerable/i.test(reneg.finding)) {
    problems.push(`client-initiated renegotiation: ${reneg?.finding ?? 'not tested'}`);
  }
  for (const f of findings) {
    if (BAD_SEVERITIES.has(f.severity)) problems.push(`${f.id} (${f.severity}): ${f.finding}`);
  }
  return [...new Set(problems)];
}

async function main() {
  let db: TestDatabase | undefined;
  let server: FleetgateProcess | undefined;
  let target = process.argv[2];
  try {
    if (!target) {
      // The throwaway server always uses a fresh embedded database.
      delete process.env.DATABASE_URL;
      db = await createTestDatabase();
      server = await startFleetgate(db);
      target = `localhost:${server.port}`;
    }
    const jsonFile = path.join(fs.mkdtempSync('/tmp/fleetgate-tls-audit-'), 'testssl.json');
    await runTestssl(target, jsonFile);
    const findings = JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as Finding[];
    const problems = evaluate(findings);
    const summary = (id: string) => findings.find((f) => f.id === id)?.finding ?? 'n/a';
    process.stdout.write(
      `\nTLS audit of ${target} (testssl ${summary('version') === 'n/a' ? '' : summary('version')}, ${findings.length} findings, JSON: ${jsonFile})\n` +
        `  protocols: SSLv2 ${summary('SSLv2')}, SSLv3 ${summary('SSLv3')}, TLS 1.0 ${summary('TLS1')}, TLS 1.1 ${summary('TLS1_1')}, TLS 1.2 ${summary('TLS1_2')}, TLS 1.3 ${summary('TLS1_3')}\n` +
        `  client-initiated renegotiation: ${summary('secure_client_renego')}\n`,
    );
    if (problems.length > 0) {
      process.stdout.write(`FAILED:\n${problems.map((p) => `  - ${p}`).join('\n')}\n`);
      process.exitCode = 1;
    } else {
      process.stdout.write(
        'PASSED: TLS 1.2/1.3 only, no weak ciphers, no client renegotiation, no vulnerability flagged\n',
      );
    }
  } finally {
    await server?.stop();
    await db?.drop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`tls-audit: ${(err as Error).message}\n`);
  process.exitCode = 2;
});
