import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/** A stored session by ID, unless it expired. */
export async function findTlsSession(
  db: Kysely<Database>,
  sessionId: Buffer,
): Promise<Buffer | undefined> {
  const row = await db
    .selectFrom('tls_sessions')
    .select('session')
    .where('session_id', '=', sessionId)
    .where('expires_at', '>', sql<Date>`now()`)
    .executeTakeFirst();
  return row?.session;
}

export async function saveTlsSession(
  db: Kysely<Database>,
  sessionId: Buffer,
  session: Buffer,
  lifetimeMs: number,
): Promise<void> {
  await sql`
    insert into tls_sessions (session_id, session, expires_at)
    values (${sessionId}, ${session}, now() + make_interval(secs => ${lifetimeMs / 1000}))
    on conflict (session_id) do update
      set session = excluded.session, expires_at = excluded.expires_at`.execute(db);
}

export async function deleteExpiredTlsSessions(db: Kysely<Database>): Promise<number> {
  const result = await db
    .deleteFrom('tls_sessions')
    .where('expires_at', '<=', sql<Date>`now()`)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** The newest ticket keys, newest first, with their age in milliseconds. */
export async function listTicketKeys(
  db: Kysely<Database>,
  limit: number,
): Promise<Array<{ key: Buffer; ageMs: number }>> {
  const result = await sql<{ key: Buffer; age_ms: number }>`
    select key, extract(epoch from (now() - created_at)) * 1000 as age_ms
    from tls_ticket_keys order by id desc limit ${limit}`.execute(db);
  return result.rows.map((r) => ({ key: r.key, ageMs: Number(r.age_ms) }));
}

/**
 * Inside `trx`: waits for the other nodes that rotate ticket keys at this
 * moment (a transaction-scoped advisory lock), so that one rotation happens.
 */
export async function lockTicketKeyRotation(trx: Kysely<Database>): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtext('fleetgate.tls_ticket_keys'))`.execute(trx);
}

/** Adds a key (it becomes the newest, the one that encrypts) and keeps the newest three. */
export async function insertTicketKey(trx: Kysely<Database>, key: Buffer): Promise<void> {
  await trx.insertInto('tls_ticket_keys').values({ key }).execute();
  await sql`
    delete from tls_ticket_keys
    where id < (select min(id) from (select id from tls_ticket_keys order by id desc limit 3) newest)`.execute(
    trx,
  );
}
