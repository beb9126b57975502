import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config/config.js';
import { AppError } from './app-error.js';
import { answerJson } from './json-answer.js';
import { closeAfterAnswer } from './lingering-close.js';

export interface BodyGuardOptions {
  /** No byte for this long: 408 `body_timeout` (0: off). */
  idleMs: number;
  /** Fewer bytes than this per second over a whole window: 408 `body_too_slow` (0: off). */
  minBytesPerSecond: number;
  windowMs: number;
}

export function bodyGuardOptions(config: Config): BodyGuardOptions {
  return {
    idleMs: config.timeouts.bodyIdleMs,
    minBytesPerSecond: config.timeouts.minBodyBytesPerSecond,
    windowMs: config.timeouts.minBodyRateWindowMs,
  };
}

export interface BodyGuard {
  stop(): void;
}

/**
 * Watches a request body while it is read: a client that stops sending, or
 * trickles a byte now and then to dodge the idle timeout, is given up with a
 * 408 through `onViolation`, so it cannot hold a database connection (or a
 * request slot) for the whole request timeout. Time during which fleetgate
 * itself is not reading (backpressure from a busy database) never counts
 * against the client.
 *
 * Start it in the same tick as the body's reader is attached: it listens to
 * `data`, which would otherwise start the flow with nobody reading.
 */
export function guardBody(
  req: IncomingMessage,
  options: BodyGuardOptions,
  onViolation: (err: AppError) => void,
): BodyGuard {
  let idleTimer: NodeJS.Timeout | undefined;
  let windowTimer: NodeJS.Timeout | undefined;
  let windowBytes = 0;
  let heldBack = false;
  let stopped = false;

  // Bytes we have not read yet, or a paused stream: the slowness is ours.
  const waitingForUs = () => req.isPaused() || req.readableLength > 0;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    clearTimeout(idleTimer);
    clearInterval(windowTimer);
    req.off('data', onData);
    req.off('pause', onPause);
    req.off('end', stop);
    req.off('close', stop);
  };
  const fail = (err: AppError) => {
    if (stopped || req.complete) return stop();
    stop();
    onViolation(err);
  };
  const armIdle = () => {
    if (options.idleMs <= 0 || stopped) return;
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => {
      if (waitingForUs()) return armIdle();
      fail(
        new AppError(408, 'body_timeout', `no request data for ${options.idleMs} ms; giving up`),
      );
    }, options.idleMs);
    idleTimer.unref();
  };
  const onData = (chunk: Buffer | string) => {
    windowBytes += chunk.length;
    armIdle();
  };
  const onPause = () => (heldBack = true);

  if (options.minBytesPerSecond > 0) {
    const required = Math.ceil((options.minBytesPerSecond * options.windowMs) / 1000);
    windowTimer = setInterval(() => {
      const tooSlow = !heldBack && !waitingForUs() && windowBytes < required;
      windowBytes = 0;
      heldBack = false;
      if (tooSlow) {
        fail(
          new AppError(
            408,
            'body_too_slow',
            `the request body arrived slower than ${options.minBytesPerSecond} bytes/s ` +
              `over ${options.windowMs} ms; giving up`,
            { minBytesPerSecond: options.minBytesPerSecond, windowMs: options.windowMs },
          ),
        );
      }
    }, options.windowMs);
    windowTimer.unref();
  }
  if (req.complete) {
    stop();
    return { stop };
  }
  req.on('data', onData);
  req.on('pause', onPause);
  req.once('end', stop);
  req.once('close', stop);
  armIdle();
  return { stop };
}

/**
 * For bodies read by a body parser (bind, rotation): answers the violation at
 * once and closes the connection; the parser then fails on the closed request
 * and its error is dropped, as the answer has gone out.
 */
export function answerAndClose(res: ServerResponse, err: AppError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  for (const [name, value] of Object.entries(err.headers ?? {})) res.setHeader(name, value);
  closeAfterAnswer(res.req, res);
  answerJson(res, err.status, {
    error: err.message,
    code: err.code,
    ...(err.details ? { details: err.details } : {}),
  });
}
