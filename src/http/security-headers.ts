import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PlainMiddleware } from './plain-middleware.js';
import helmet from 'helmet';

/**
 * helmet's headers with its defaults, worked out once: helmet runs a dozen
 * middlewares per request that set the same constant headers every time (no
 * nonces, nothing taken from the request), which cost the device endpoint's
 * hot path more than setting the list below. Any header helmet would set or
 * remove is set or removed here, in the same order.
 */
export function securityHeaders(): PlainMiddleware {
  const actions = helmetActions();
  return (_req, res, next) => {
    for (const [name, value] of actions) {
      if (value === null) res.removeHeader(name);
      else res.setHeader(name, value);
    }
    next();
  };
}

type HeaderAction = [name: string, value: string | null];
let recorded: HeaderAction[] | null = null;

/** What helmet's defaults set (a value) or remove (null), in order; recorded once. */
function helmetActions(): HeaderAction[] {
  if (recorded) return recorded;
  const actions: HeaderAction[] = [];
  const recorder = {
    setHeader(name: string, value: string) {
      actions.push([name, String(value)]);
    },
    removeHeader(name: string) {
      actions.push([name, null]);
    },
  };
  let called = false;
  helmet()({} as IncomingMessage, recorder as unknown as ServerResponse, (err?: unknown) => {
    if (err) throw err instanceof Error ? err : new Error(String(err));
    called = true;
  });
  // helmet's middlewares are synchronous; if that ever changes, fail at start.
  if (!called) throw new Error('helmet did not finish synchronously');
  recorded = actions;
  return actions;
}

/**
 * The same headers as header lines (`Name: value\r\n` each), for answers
 * written straight to a socket, where there is no response object: the
 * parser's refusals and the timeout of a connection that sent no request.
 */
export function securityHeaderLines(): string {
  const final = new Map<string, string>();
  for (const [name, value] of helmetActions()) {
    final.delete(name.toLowerCase());
    if (value !== null) final.set(name.toLowerCase(), `${name}: ${value}\r\n`);
  }
  return [...final.values()].join('');
}
