import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { AppError } from './app-error.js';
import { answerError } from './error-handler.js';
import { requestLog } from './request-log.js';
import { securityHeaders } from './security-headers.js';

/**
 * The listeners handle `checkContinue` themselves, so Node no longer answers
 * `Expect: 100-continue` before fleetgate has looked at the request. A route
 * calls this once it has decided to read the body (certificate checked, device
 * bound, throttles passed); a request refused earlier gets its final answer
 * without the client ever sending the body.
 */
export function continueIfExpected(req: IncomingMessage, res: ServerResponse): void {
  // Whatever Node took for a 100-continue request (`checkContinue`), including
  // two Expect headers joined as "100-continue, 100-continue".
  const expect = req.headers.expect;
  if (typeof expect !== 'string' || !CONTINUE.test(expect)) return;
  if (res.headersSent || continued.has(res)) return;
  continued.add(res);
  res.writeContinue();
}

const continued = new WeakSet<ServerResponse>();
/** Node's own test (`continueExpression` in _http_server.js). */
const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i;

/**
 * Answers a request whose Expect is not 100-continue (Node's `checkExpectation`)
 * with 417, as Node would if nobody listened: the listener listens (to stop its
 * first-request timer), and a request nobody answered held its connection,
 * opened without a certificate, past every timeout. The answer carries the
 * usual headers and request id and is logged like any other; the connection is
 * closed, so an unread body is never taken for the next request.
 */
export function refuseUnknownExpectation(
  log: Logger,
): (req: IncomingMessage, res: ServerResponse) => void {
  const middlewares = [securityHeaders(), requestLog(log, 'request')];
  return (req, res) => {
    const plain = Object.assign(res, { locals: {} });
    for (const middleware of middlewares) middleware(req, plain, () => undefined);
    res.setHeader('Connection', 'close');
    answerError(
      log,
      new AppError(417, 'expectation_failed', 'only the expectation 100-continue is supported'),
      req,
      plain,
    );
  };
}
