import type { IncomingMessage, ServerResponse } from 'node:http';

/** A response with express's `locals` (the hot routes give plain responses one too). */
export type PlainResponse = ServerResponse & { locals: Record<string, unknown> };

/**
 * A middleware that needs nothing of express: express runs it for every
 * route, and the device endpoint's hot routes run it themselves (app.ts).
 * It calls `next` synchronously.
 */
export type PlainMiddleware = (req: IncomingMessage, res: PlainResponse, next: () => void) => void;

/** The request's path without the query string (express's `req.path` where it has one). */
export function pathOf(req: IncomingMessage & { path?: string }): string {
  if (typeof req.path === 'string') return req.path;
  const url = req.url ?? '/';
  const query = url.indexOf('?');
  return query < 0 ? url : url.slice(0, query);
}
