import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The listeners handle `checkContinue` themselves, so Node no longer answers
 * `Expect: 100-continue` before fleetgate has looked at the request. A route
 * calls this once it has decided to read the body (certificate checked, device
 * bound, throttles passed); a request refused earlier gets its final answer
 * without the client ever sending the body.
 */
export function continueIfExpected(req: IncomingMessage, res: ServerResponse): void {
  const expect = req.headers.expect;
  if (typeof expect !== 'string' || expect.trim().toLowerCase() !== '100-continue') return;
  if (res.headersSent || continued.has(res)) return;
  continued.add(res);
  res.writeContinue();
}

const continued = new WeakSet<ServerResponse>();
