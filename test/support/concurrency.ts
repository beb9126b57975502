import { expect } from 'chai';
import type { Readable } from 'node:stream';
import type { Answer } from './device-client.js';
import type { FleetgateProcess } from './fleetgate-process.js';
import { queryTestDatabase, type TestDatabase } from './test-database.js';

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `condition` until it holds; fails naming `what` after `timeoutMs`.
 * For waiting on something observable instead of sleeping and hoping.
 */
export async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
  intervalMs = 25,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await pause(intervalMs);
  }
}

/** A gate that many requests wait on, opened once. */
export function gate(): { opened: Promise<void>; open(): void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

/**
 * A request body that sends its first `headBytes` (the multipart headers and a
 * few lines: small enough to pass even a server that is not reading), calls
 * `headSent` once the client has written them and asks for more, then waits
 * for `opened` before sending the rest.
 */
/**
 * Head of a gated upload that is sure to open its transaction before the gate:
 * the first series of a batch is held in memory up to 2,000 points (about
 * 40 KB of lines) for the single-statement path and written from then on.
 */
export const PAST_HELD_POINTS_BYTES = 64 * 1024;

/**
 * 2,001 lines, one millisecond apart from `startMs`: more than the points a
 * batch's first series is held in memory for, so an upload whose first part
 * begins with them has its transaction (and a database connection) open.
 */
export function linesPastHeldPoints(startMs: number, value = '1'): string {
  let out = '';
  for (let i = 0; i <= 2000; i++) out += `${startMs + i},${value}\n`;
  return out;
}

export function gatedBody(
  body: Buffer,
  opened: Promise<void>,
  headSent: () => void,
  headBytes = 1024,
): Readable {
  async function* chunks() {
    yield body.subarray(0, headBytes);
    headSent();
    await opened;
    yield body.subarray(headBytes);
  }
  // undici streams an async iterable body; the type says Readable.
  return chunks() as unknown as Readable;
}

export interface ServedInterval {
  reqId: string;
  /** Server clock, epoch ms: when the request reached the app and when its answer was sent. */
  start: number;
  end: number;
}

/**
 * When the server itself handled each request, from its request log line
 * (`time` is when the answer finished, `ms` how long the request took).
 */
export async function servedIntervals(
  server: FleetgateProcess,
  answers: Answer[],
): Promise<ServedInterval[]> {
  const ids = answers.map((a) => String(a.headers['x-request-id'] ?? ''));
  for (const id of ids) expect(id, 'an answer without X-Request-Id').to.match(/^[0-9a-f-]{36}$/);
  const find = () => {
    const found = new Map<string, ServedInterval>();
    for (const line of server.output().split('\n')) {
      if (!line.startsWith('{')) continue;
      const entry = JSON.parse(line) as { reqId?: string; time?: number; ms?: number };
      if (entry.reqId && ids.includes(entry.reqId) && entry.time && entry.ms !== undefined)
        found.set(entry.reqId, {
          reqId: entry.reqId,
          start: entry.time - entry.ms,
          end: entry.time,
        });
    }
    return found;
  };
  // The log line is written when the answer finishes: it may trail the answer a little.
  await waitFor('the request log lines', () => find().size === ids.length, 10_000);
  const found = find();
  return ids.map((id) => found.get(id)!);
}

/** All requests were in the server at one moment: the last to arrive came before the first to end. */
export function expectAllInFlightTogether(intervals: ServedInterval[]): void {
  expect(intervals.length).to.be.greaterThan(1);
  const lastStart = Math.max(...intervals.map((i) => i.start));
  const firstEnd = Math.min(...intervals.map((i) => i.end));
  expect(
    lastStart,
    `the requests did not overlap on the server: ${JSON.stringify(intervals)}`,
  ).to.be.below(firstEnd);
}

/**
 * Sessions of the server on the test database that are inside a transaction
 * (real PostgreSQL only): uploads that are mid-transaction right now. With
 * `waitingForServer`, only those whose backend waits for fleetgate to send
 * more (ClientRead): fleetgate has passed on all it had of the upload.
 */
export async function sessionsInTransaction(
  db: TestDatabase,
  { waitingForServer = false } = {},
): Promise<number> {
  const [row] = await queryTestDatabase<{ n: string }>(
    db,
    `select count(*)::text as n from pg_stat_activity
     where datname = current_database() and pid <> pg_backend_pid()
       and backend_type = 'client backend' and xact_start is not null
       and (not $1 or wait_event = 'ClientRead')`,
    [waitingForServer],
  );
  return Number(row!.n);
}
