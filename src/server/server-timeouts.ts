import type { Config } from '../config/config.js';

/** The same limits for the HTTPS listener (direct) and the plain one behind nginx. */
export function serverTimeouts(config: Config) {
  return {
    headersTimeout: config.timeouts.headersMs,
    requestTimeout: config.timeouts.requestMs,
    keepAliveTimeout: config.timeouts.keepAliveMs,
    // Node checks the two timeouts above only this often (30 s by default), so
    // a slow-loris client would otherwise hold its socket up to 30 s longer.
    connectionsCheckingInterval: Math.min(1000, config.timeouts.headersMs),
  };
}
