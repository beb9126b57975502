import type { Readable } from 'node:stream';

interface Part {
  stream: Readable;
}

/**
 * The upload's parts, until `signal` aborts: then the part being read is
 * destroyed with the abort reason and a wait for the next part ends with it,
 * so the ingest stops where it is, rolls back its transaction (releasing its
 * database connection) and the reason is what the client is answered.
 */
export async function* abortableParts<P extends Part>(
  parts: AsyncIterable<P>,
  signal: AbortSignal,
): AsyncGenerator<P> {
  const iterator = parts[Symbol.asyncIterator]();
  let current: Readable | undefined;
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => {
      current?.destroy(signal.reason as Error);
      reject(signal.reason);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => undefined);
  let done = false;
  try {
    for (;;) {
      const next = await Promise.race([iterator.next(), aborted]);
      if (next.done) {
        done = true;
        return;
      }
      current = next.value.stream;
      if (signal.aborted) current.destroy(signal.reason as Error);
      yield next.value;
      current = undefined;
    }
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
    // The parser may be stuck waiting for bytes that never come: let it clean
    // up whenever it can, without waiting for it here.
    if (!done) void iterator.return?.(undefined)?.catch(() => undefined);
  }
}
