import { pino, type Logger } from 'pino';

/**
 * Server logs go to stdout as JSON; CLI commands log to stderr so that their
 * stdout is exactly the answer (a PSK, an export). PSKs never reach a log:
 * request bodies are not logged and these paths are redacted as a backstop.
 */
export function createLogger(level: string, destination: 1 | 2 = 1): Logger {
  return pino(
    {
      level,
      base: { service: 'fleetgate' },
      redact: {
        paths: ['PSK', '*.PSK', 'psk', '*.psk', 'secret', '*.secret'],
        censor: '[redacted]',
      },
    },
    pino.destination(destination),
  );
}
