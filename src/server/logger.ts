import { pino, type Logger } from 'pino';

/**
 * Server logs go to stdout as JSON; CLI commands log to stderr so that their
 * stdout is exactly the answer (a PSK, an export). PSKs never reach a log:
 * request bodies are not logged and these paths are redacted as a backstop.
 *
 * `sync: false` (the server): lines are written by a background write instead
 * of a blocking write per line on the event loop (a request's log line cost
 * about 0.2-0.45 ms of the server's CPU that way). pino flushes what is
 * buffered when the process exits, also on a crash; only a SIGKILL (or the
 * machine going down) can lose the last lines. While stdout is not read (a
 * stalled log collector), at most LOG_BUFFER_MAX_BYTES wait in memory and
 * later lines are dropped: a blocking write used to stall the server instead,
 * and an unbounded buffer would grow with every request until the process
 * runs out of memory. `onDrop` is called once per dropped line (the server
 * counts them in `fleetgate_log_lines_dropped_total`).
 */
export const LOG_BUFFER_MAX_BYTES = 16 * 1024 * 1024;

export function createLogger(
  level: string,
  destination: 1 | 2 = 1,
  options: { sync?: boolean; onDrop?: () => void } = {},
): Logger {
  const stream = pino.destination({
    dest: destination,
    sync: options.sync ?? true,
    ...(options.sync === false ? { maxLength: LOG_BUFFER_MAX_BYTES } : {}),
  });
  // SonicBoom emits 'drop' with the one line (one write) it did not buffer.
  if (options.onDrop) stream.on('drop', options.onDrop);
  return pino(
    {
      level,
      base: { service: 'fleetgate' },
      redact: {
        paths: ['PSK', '*.PSK', 'psk', '*.psk', 'secret', '*.secret'],
        censor: '[redacted]',
      },
    },
    stream,
  );
}
