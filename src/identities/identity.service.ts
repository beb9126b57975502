import type { Kysely } from 'kysely';
import { AppError, badRequest, conflict, notFound } from '../http/app-error.js';
import { isUniqueViolation } from '../db/errors.js';
import type { Database } from '../db/schema.js';
import { findIdentityByName, insertIdentity, type IdentityRow } from './identity.repository.js';

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$/;

export function assertIdentityName(name: string): void {
  if (!NAME_PATTERN.test(name)) {
    throw badRequest(
      'invalid_identity_name',
      'identity names are 1-128 characters: letters, digits, and _ . @ - (not first)',
    );
  }
}

export async function createIdentity(db: Kysely<Database>, name: string): Promise<IdentityRow> {
  assertIdentityName(name);
  try {
    return await insertIdentity(db, name);
  } catch (err) {
    if (isUniqueViolation(err))
      throw conflict('identity_exists', `identity ${name} already exists`);
    throw err;
  }
}

export async function requireIdentity(db: Kysely<Database>, name: string): Promise<IdentityRow> {
  const identity = await findIdentityByName(db, name);
  if (!identity) throw notFound('identity_not_found', `no identity named ${name}`);
  return identity;
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}
