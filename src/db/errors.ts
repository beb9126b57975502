/** Postgres SQLSTATE helpers, shared by the pg and PGlite drivers (both set `code`). */
export function sqlStateOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export const isUniqueViolation = (err: unknown) => sqlStateOf(err) === '23505';

/**
 * DATABASE_URL leads to a connection pooler that refuses the `options` startup
 * parameter fleetgate sends on a direct connection (PgBouncer 1.18 answers
 * `unsupported startup parameter: options`, SQLSTATE 08P01). It is not down:
 * it will refuse every attempt until FLEETGATE_DB_POOLER says it is a pooler.
 */
export function isPoolerRefusingOptions(err: unknown): boolean {
  const message = err instanceof Error ? err.message : '';
  return /unsupported startup parameter: options/i.test(message);
}

/**
 * Errors that mean "the database is not reachable right now", as opposed to a
 * bug: connection refused or reset, server shutting down, pool checkout timeout.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  const state = sqlStateOf(err);
  if (state && (state.startsWith('08') || state.startsWith('57P'))) return true;
  if (state && ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND'].includes(state)) {
    return true;
  }
  const message = err instanceof Error ? err.message : '';
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connection is closed/i.test(
    message,
  );
}

/**
 * Transactions the database aborted to resolve a conflict with another one
 * (deadlock, serialization failure): nothing was stored and the same request,
 * sent again, succeeds. Two concurrent uploads of one device that write the
 * same series in opposite order can deadlock this way.
 */
export function isRetryableConflict(err: unknown): boolean {
  const state = sqlStateOf(err);
  return state === '40P01' || state === '40001';
}
