import type http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/config.js';
import { httpsOptions, loadServerTlsMaterial } from '../../src/server/tls-options.js';

/**
 * The floors of benchmark item 6, run as a process of their own (their CPU is
 * then counted apart from the bench's): Node's https server with fleetgate's
 * TLS options, certificates and suites.
 * - `constant`: every request is answered with a constant JSON (no framework,
 *   no database, no log).
 * - `store`: a POST's one-part multipart body is cut out by hand (no parser,
 *   no checks), its `epoch_ms,value` lines split at the comma, and stored with one INSERT ... ON CONFLICT DO NOTHING
 *   (arrays unnested, a prepared statement, autocommit: durable on return)
 *   into a table of its own on DATABASE_URL; then `{"stored":n}`. No device,
 *   no certificate check, no validation beyond the split, no log: the least any
 *   Node server storing the upload does.
 * Arguments: the bench server's data and certificate directories, the mode.
 * Prints `PORT <n>` once it listens.
 */
const [dataDir, certsDir, mode = 'constant'] = process.argv.slice(2);
const config = loadConfig({ FLEETGATE_DATA_DIR: dataDir!, FLEETGATE_CERTS_DIR: certsDir! });
const options = httpsOptions(loadServerTlsMaterial(config, pino({ level: 'silent' })), config);

const pool = mode === 'store' ? new pg.Pool({ connectionString: process.env.DATABASE_URL }) : null;
const INSERT = `insert into bench_floor_points (series, ts, value)
  select $1, timestamptz 'epoch' + u.ms * interval '1 millisecond', u.v
  from unnest($2::bigint[], $3::float8[]) as u(ms, v) on conflict do nothing`;

function store(req: http.IncomingMessage, res: http.ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    void (async () => {
      // One part: its body runs from the blank line after its headers to the
      // closing delimiter. Enough for the bench's client, not a parser.
      const boundary = /boundary=([^;]+)/.exec(req.headers['content-type'] ?? '')?.[1];
      const body = Buffer.concat(chunks).toString('latin1');
      const name = /filename="([^"]+)"/.exec(body)?.[1];
      const start = body.indexOf('\r\n\r\n') + 4;
      const end = body.indexOf(`\r\n--${boundary}`, start);
      if (!boundary || !name || start < 4 || end < 0)
        return answer(res, 400, '{"error":"bad body"}');
      const ms: string[] = [];
      const values: string[] = [];
      for (const line of body.slice(start, end).split('\n')) {
        const comma = line.indexOf(',');
        if (comma < 0) continue;
        ms.push(line.slice(0, comma));
        values.push(line.slice(comma + 1).trim());
      }
      const result = await pool!.query({
        name: 'floor_store',
        text: INSERT,
        values: [name, `{${ms.join(',')}}`, `{${values.join(',')}}`],
      });
      answer(res, 200, `{"stored":${result.rowCount ?? 0}}`);
    })().catch((err: unknown) => answer(res, 503, JSON.stringify({ error: String(err) })));
  });
}

function answer(res: http.ServerResponse, status: number, json: string): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.end(json);
}

async function main(): Promise<void> {
  if (pool) {
    await pool.query(`create table if not exists bench_floor_points
      (series text, ts timestamptz, value float8, primary key (series, ts))`);
  }
  const floor = https.createServer(options, (req, res) => {
    if (pool && req.method === 'POST') store(req, res);
    else answer(res, 200, '{"status":"active"}');
  });
  floor.listen(0, '127.0.0.1', () => {
    process.stdout.write(`PORT ${(floor.address() as AddressInfo).port}\n`);
  });
}

void main();
