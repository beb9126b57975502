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

/** pg's client, with registered statements sent by name (see prepareOnPostgres). */
export class PreparingClient extends pg.Client {
  // pg's query() has a dozen overloads; the arguments are passed on unchanged
  // except that a registered text with its values becomes a named query.
  override query(...args: unknown[]): never {
    const [text, values, ...rest] = args;
    const name = typeof text === 'string' && Array.isArray(values) ? preparedName(text) : undefined;
    const call = super.query as (...a: unknown[]) => never;
    return name === undefined
      ? call.apply(this, args)
      : call.call(this, { name, text, values }, ...rest);
  }
}
