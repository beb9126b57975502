/**
 * A mocha root hook (loaded by .mocharc.cjs): after the whole run it lists
 * every pending test and, in CI (CI=true, as .ci/run sets), fails the run when
 * one of them is not allowed to be pending on this database. A suite that
 * skips itself (missing nginx, missing PostgreSQL server binaries, a version it
 * does not know) can then never vanish from CI without a word.
 */

type Database = 'postgres' | 'embedded';

/**
 * The tests that may be pending, where, and why (the why is printed). A title
 * ending in ' *' allows every test of the suite it names.
 */
export const PENDING_ALLOWED: ReadonlyArray<{ title: string; on: Database; why: string }> = [
  {
    title:
      'fifth pass: a JSON batch the database aborts for a deadlock is stored once, whole, after the retry, and answered 200 (PostgreSQL)',
    on: 'embedded',
    why: 'makes a deadlock from a second PostgreSQL session; the embedded database has one session',
  },
  {
    title:
      'fifth pass: a JSON batch the database aborts for a deadlock waits for a device row held elsewhere before writing any point (no deadlock) and stores the batch whole (PostgreSQL)',
    on: 'embedded',
    why: 'holds the device row from a second PostgreSQL session; the embedded database has one session',
  },
  {
    title:
      'fourth pass: prepared statements sends a named query config of the pool (the single-statement upload) again after its plan went stale',
    on: 'embedded',
    why: 'a pg pool on a PostgreSQL server; the embedded database prepares nothing',
  },
  {
    title:
      'fourth pass: prepared statements binds a device in the first transaction after such a schema change',
    on: 'embedded',
    why: 'changes the schema from a second PostgreSQL session; the embedded database has one session and prepares nothing',
  },
  {
    title:
      'fourth pass: prepared statements keeps answering 200 after a schema change alters what a prepared statement returns (cached plan must not change result type)',
    on: 'embedded',
    why: 'changes the schema from a second PostgreSQL session; the embedded database has one session and prepares nothing',
  },
  {
    title: 'MQTT channel sends no PUBACK while the commit cannot happen (PostgreSQL)',
    on: 'embedded',
    why: 'holds a table lock from a second PostgreSQL session; the embedded database has one',
  },
  {
    title: 'binding a device certificate with a PSK refuses a revoked PSK with 400',
    on: 'embedded',
    why: 'revokes through SQL from the test; revocation on both databases goes through the admin API in test/admin',
  },
  {
    title:
      'review findings answers 503 with Retry-After when every database connection is held, instead of hanging',
    on: 'embedded',
    why: 'the embedded database has one session: its requests queue by design, there is no pool to exhaust',
  },
  {
    title: 'first hour: the CLI beside a server on PostgreSQL *',
    on: 'embedded',
    why: 'these tests are about a server on PostgreSQL; the PostgreSQL run covers them',
  },
  {
    title: 'first hour: the run note never stops a server on PostgreSQL *',
    on: 'embedded',
    why: 'these tests are about a server on PostgreSQL; the PostgreSQL run covers them',
  },
  {
    title:
      'admin-token reset while FLEETGATE_ADMIN_TOKEN is set is refused by a running server on the embedded database that has it set, even if the CLI has not',
    on: 'postgres',
    why: 'the refusal by a running server goes through the embedded database control socket; PostgreSQL has none',
  },
  {
    title: 'WebSocket device channel sends no ack while the commit cannot happen (PostgreSQL)',
    on: 'embedded',
    why: 'it holds a table lock from a second session, which the one-session embedded database cannot have',
  },
  {
    title:
      'whole-service review: WebSocket channel stops reading a flooding socket while its messages wait for the database (backpressure)',
    on: 'embedded',
    why: 'blocks the device row from a second PostgreSQL session; the embedded database has one session',
  },
  {
    title: 'fleetgate on a Citus cluster *',
    on: 'embedded',
    why: 'the Citus suite starts its own cluster and runs once, in the PostgreSQL run',
  },
  {
    title: 'README: fleetgate migrate distributes the schema on Citus, run verbatim with bash *',
    on: 'embedded',
    why: 'the Citus suite starts its own cluster and runs once, in the PostgreSQL run',
  },
  {
    title: 'through a connection pooler *',
    on: 'embedded',
    why: 'PgBouncer sits in front of a PostgreSQL server; the embedded database has none',
  },
  {
    title: 'several nodes on one PostgreSQL behind nginx *',
    on: 'embedded',
    why: 'several nodes share one PostgreSQL server; the embedded database belongs to one process',
  },
  {
    title: 'server time of messages without ts on two nodes of one PostgreSQL *',
    on: 'embedded',
    why: 'several nodes share one PostgreSQL server; the embedded database belongs to one process',
  },
  {
    title: 'shared node state on PostgreSQL *',
    on: 'embedded',
    why: 'the stores shared by several nodes live in PostgreSQL; the embedded database keeps them in memory',
  },
];

function allows(allowed: { title: string }, title: string): boolean {
  return allowed.title.endsWith(' *')
    ? title.startsWith(allowed.title.slice(0, -1))
    : allowed.title === title;
}

export function unexpectedPending(titles: string[], database: Database): string[] {
  return titles.filter(
    (title) =>
      !PENDING_ALLOWED.some((allowed) => allows(allowed, title) && allowed.on === database),
  );
}

function pendingTitles(suite: Mocha.Suite): string[] {
  const own = suite.tests.filter((test) => test.isPending()).map((test) => test.fullTitle());
  return [...own, ...suite.suites.flatMap(pendingTitles)];
}

export const mochaHooks = {
  afterAll(this: Mocha.Context) {
    let root = this.test?.parent;
    while (root?.parent) root = root.parent;
    if (!root) return;
    const pending = pendingTitles(root);
    if (pending.length === 0) return;
    const database: Database = process.env.DATABASE_URL ? 'postgres' : 'embedded';
    const unexpected = unexpectedPending(pending, database);
    console.warn(`\n  ${pending.length} pending test(s) on the ${database} database:`);
    for (const title of pending) {
      const allowed = PENDING_ALLOWED.find((a) => allows(a, title) && a.on === database);
      console.warn(`    - ${title}${allowed ? ` (allowed: ${allowed.why})` : ''}`);
    }
    if (process.env.CI === 'true' && unexpected.length > 0)
      throw new Error(
        `CI expects these tests to run, but they were skipped (see the reason printed with each skip; ` +
          `allowed exceptions are listed in test/support/ci-pending.ts):\n${unexpected.join('\n')}`,
      );
  },
};
