import type { Config } from '../config/config.js';

/** The same limits for the HTTPS listener (direct) and the plain one behind nginx. */
export function serverTimeouts(config: Config) {
  return {
    headersTimeout: config.timeouts.headersMs,
    requestTimeout: config.timeouts.requestMs,
    keepAliveTimeout: config.timeouts.keepAliveMs,
  };
}
