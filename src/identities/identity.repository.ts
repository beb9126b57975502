import type { Kysely, Selectable } from 'kysely';
import type { Database, IdentityTable } from '../db/schema.js';

export type IdentityRow = Selectable<IdentityTable>;

export async function insertIdentity(db: Kysely<Database>, name: string): Promise<IdentityRow> {
  return db.insertInto('identities').values({ name }).returningAll().executeTakeFirstOrThrow();
}

export async function findIdentityByName(
  db: Kysely<Database>,
  name: string,
): Promise<IdentityRow | undefined> {
  return db.selectFrom('identities').selectAll().where('name', '=', name).executeTakeFirst();
}

/** Row lock that serialises concurrent binds of one identity (device limits). */
export async function lockIdentity(db: Kysely<Database>, id: number): Promise<IdentityRow> {
  return db
    .selectFrom('identities')
    .selectAll()
    .where('id', '=', id)
    .forUpdate()
    .executeTakeFirstOrThrow();
}
