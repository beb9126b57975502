import type { ServerResponse } from 'node:http';

/**
 * Ends `res` with `body` as JSON, as express's `res.status(n).json(body)`
 * would (same headers, no body for HEAD), on a plain Node response too: the
 * device endpoint's hot routes answer without express (see app.ts).
 */
export function answerJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  if (res.req?.method === 'HEAD') res.end();
  else res.end(text);
}
