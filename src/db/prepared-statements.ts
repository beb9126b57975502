import pg from 'pg';

/**
 * Statements asked on (nearly) every request, by their SQL text. On a real
 * PostgreSQL they go out as named prepared statements: parsed and planned once
 * per connection instead of on every call (the device lookup, with its joins
 * and CRL subquery, cost PostgreSQL about 0.4 ms per request to plan). Kysely
 * sends compiled SQL as text and values; the pool's clients (below) turn a
 * registered text into its named statement, inside transactions too.
 */
const namesByText = new Map<string, string>();

/** Registers `text` (exactly as it will be sent) under a name of its own. */
export function prepareOnPostgres(name: string, text: string): void {
  const known = namesByText.get(text);
  if (known !== undefined && known !== name) {
    throw new Error(`statement already prepared as ${known}`);
  }
  for (const [otherText, otherName] of namesByText) {
    if (otherName === name && otherText !== text) {
      throw new Error(`two statements named ${name}`);
    }
  }
  namesByText.set(text, name);
}

/** The name a text is prepared under, if it was registered. */
export function preparedName(text: string): string | undefined {
  return namesByText.get(text);
}

/** A named query as pg takes it: `{ name, text, values }` and the rest of its options. */
interface NamedQuery {
  name: string;
  text: string;
  values?: unknown[];
  [option: string]: unknown;
}

type Callback = (err: Error | null, result?: unknown) => void;

/**
 * A named query in pg's arguments: a registered text with its values, or a
 * query config that names its statement (points.repository.ts sends one on
 * the pool), with the callback pg-pool passes. Anything else is not ours.
 */
function namedQueryOf(
  args: unknown[],
  alone: boolean,
): { query: NamedQuery; callback?: Callback } | undefined {
  const [first, second, third] = args;
  const callbackOf = (...candidates: unknown[]) =>
    candidates.find((c): c is Callback => typeof c === 'function');
  if (typeof first === 'string' && Array.isArray(second)) {
    // In a transaction a registered text goes unnamed (see PreparingClient).
    const name = alone ? preparedName(first) : undefined;
    if (name === undefined) return undefined;
    return { query: { name, text: first, values: second }, callback: callbackOf(third) };
  }
  if (typeof first !== 'object' || first === null) return undefined;
  const config = first as Partial<NamedQuery> & { submit?: unknown; callback?: unknown };
  // A Submittable (a cursor, a stream) or a config with its own callback goes to pg as it is.
  if (typeof config.submit === 'function' || config.callback !== undefined) return undefined;
  if (typeof config.name !== 'string' || typeof config.text !== 'string') return undefined;
  const values = Array.isArray(second) ? second : config.values;
  return {
    query: { ...config, name: config.name, text: config.text, values },
    callback: callbackOf(second, third),
  };
}

/**
 * Errors after which this connection's copy of a named statement can never
 * run again: its result type changed under it (a migration altered a column
 * it returns: PostgreSQL re-plans a prepared statement after DDL but refuses
 * one whose result columns changed, on every later call), or it is gone
 * (`DEALLOCATE`, a pooler that moved the session). Both are raised when the
 * statement is bound, before it does anything. `routine` is not translated.
 */
function isStalePreparedStatement(err: unknown): boolean {
  const { code, routine } = (err ?? {}) as { code?: unknown; routine?: unknown };
  return (
    (code === '0A000' && routine === 'RevalidateCachedQuery') ||
    (code === '26000' && routine === 'FetchPreparedStatement')
  );
}

/**
 * pg's client, with registered statements sent by name (see prepareOnPostgres).
 * A statement gone stale on this connection (isStalePreparedStatement) is
 * prepared again under a new name, and the query, alone on its connection (no
 * transaction open, so it did nothing), is sent once more: the request never
 * sees it. In a transaction a failed statement aborts the transaction and
 * cannot be sent again, so there registered texts go unnamed (planned each
 * time: binding and enrollment, not the hot path). A query config that names
 * its own statement keeps it; in a transaction a stale one fails once.
 */
export class PreparingClient extends pg.Client {
  /** The statements prepared again on this connection: their current names. */
  private readonly renamed = new Map<string, string>();
  private preparedAgain = 0;

  // pg's query() has a dozen overloads; the arguments are passed on unchanged
  // except that a named query goes through the stale-statement check.
  override query(...args: unknown[]): never {
    const call = super.query as (...a: unknown[]) => never;
    // Nothing in flight and no transaction open: the query is a transaction of its own.
    const idle = (this as unknown as { readyForQuery?: boolean }).readyForQuery === true;
    const alone = idle && this.getTransactionStatus() === 'I';
    const named = namedQueryOf(args, alone);
    if (named === undefined) return call.apply(this, args);
    const { query, callback } = named;
    const send = (name: string) =>
      new Promise((resolve, reject) => {
        call.call(this, { ...query, name }, (err: Error | null, result: unknown) =>
          err ? reject(err) : resolve(result),
        );
      });
    const result = send(this.renamed.get(query.name) ?? query.name).catch((err: unknown) => {
      if (!isStalePreparedStatement(err)) throw err;
      this.preparedAgain += 1;
      const fresh = `${query.name}_${this.preparedAgain}`;
      this.renamed.set(query.name, fresh);
      if (!alone) throw err;
      return send(fresh);
    });
    if (callback === undefined) return result as never;
    result.then(
      (value) => callback(null, value),
      (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
    );
    return undefined as never;
  }
}

/**
 * pg's client with every statement sent unnamed, for a pooler in transaction
 * mode (FLEETGATE_DB_POOLER=transaction): there consecutive queries of one
 * client run on different server connections, so a named statement prepared
 * on one is unknown on the next (26000), or already exists there under the
 * same name, prepared by another client (42P05). Registered texts are not
 * looked up here; a query config that names its statement loses the name.
 */
export class UnnamedClient extends pg.Client {
  override query(...args: unknown[]): never {
    const call = super.query as (...a: unknown[]) => never;
    const [first, ...rest] = args;
    const config = first as { name?: unknown; submit?: unknown } | null;
    if (
      typeof config === 'object' &&
      config !== null &&
      typeof config.submit !== 'function' &&
      config.name !== undefined
    ) {
      return call.call(this, { ...config, name: undefined }, ...rest);
    }
    return call.apply(this, args);
  }
}
