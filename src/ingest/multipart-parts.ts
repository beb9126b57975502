import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { AppError, badRequest, tooLarge } from '../http/app-error.js';
import { boundaryOf, HeaderSyntaxError } from './multipart-headers.js';
import { MultipartReader } from './multipart-reader.js';

export interface FilePart {
  /** The form field name: the series name. */
  name: string;
  /** Informative only. */
  filename: string;
  stream: Readable;
}

export interface MultipartLimits {
  maxUploadBytes: number;
  maxParts: number;
  /** An upload that sends nothing for this long is given up (0: never). */
  bodyIdleMs?: number;
}

/**
 * Turns a multipart request into a sequence of file parts, consumed one at a
 * time, read by our own strict MultipartReader (see multipart-reader.ts for
 * why not busboy). The request is paused while the current part's stream is
 * full or a part waits to be taken, so a slow consumer (the database) slows
 * the client down instead of filling memory. The sequence ends only after the
 * closing boundary was read: every part of the body has then been handed out
 * whole. Any limit or syntax problem ends it with an AppError instead;
 * stopping the iteration early detaches the reader from the request.
 */
export async function* multipartFileParts(
  req: IncomingMessage,
  limits: MultipartLimits,
): AsyncGenerator<FilePart> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limits.maxUploadBytes) {
    throw uploadTooLarge(limits);
  }
  let boundary: string;
  try {
    boundary = boundaryOf(req.headers['content-type']);
  } catch (err) {
    if (!(err instanceof HeaderSyntaxError)) throw err;
    throw badRequest('malformed_multipart', `multipart request not understood: ${err.message}`);
  }

  const channel = new PartChannel();
  let current: Readable | undefined;
  // Node's Readable contract: push until push() says false, then wait for read().
  let currentWantsMore = true;
  let failed = false;
  const shouldPause = () => channel.waiting() > 0 || (current !== undefined && !currentWantsMore);
  const maybeResume = () => {
    if (!failed && !req.readableEnded && req.isPaused() && !shouldPause()) req.resume();
  };
  channel.onTake = maybeResume;
  const fail = (error: AppError) => {
    failed = true;
    req.pause();
    channel.fail(error);
  };

  const reader = new MultipartReader(
    boundary,
    {
      partStart(head) {
        const stream: Readable = new Readable({
          read() {
            if (stream === current) currentWantsMore = true;
            maybeResume();
          },
        });
        // A part destroyed after its reader let go (a later limit, an abort) must
        // not crash the process with an unhandled 'error'.
        stream.on('error', () => undefined);
        current = stream;
        currentWantsMore = true;
        channel.push({ name: head.name, filename: head.filename ?? '', stream });
      },
      partData(chunk) {
        if (!current!.push(chunk)) currentWantsMore = false;
      },
      partEnd() {
        current!.push(null);
        current = undefined;
      },
    },
    { maxParts: limits.maxParts },
  );

  let received = 0;
  const idle = idleWatch(req, limits.bodyIdleMs ?? 0, () =>
    fail(
      new AppError(408, 'body_timeout', `no upload data for ${limits.bodyIdleMs} ms; giving up`),
    ),
  );
  const onData = (chunk: Buffer) => {
    if (failed) return;
    idle.rearm();
    received += chunk.length;
    if (received > limits.maxUploadBytes) return fail(uploadTooLarge(limits));
    try {
      reader.write(chunk);
    } catch (err) {
      return fail(asAppError(err));
    }
    if (shouldPause()) req.pause();
  };
  const onEnd = () => {
    if (failed) return;
    try {
      reader.end();
    } catch (err) {
      return fail(asAppError(err));
    }
    channel.end();
  };
  const onClose = () => {
    if (!req.complete)
      fail(badRequest('upload_aborted', 'the client closed the connection mid-upload'));
  };
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('close', onClose);

  try {
    yield* channel;
  } finally {
    idle.stop();
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('close', onClose);
    req.pause();
    channel.destroyPending();
  }
}

function asAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  // The reader throws only AppErrors; anything else is a bug, but still the client's body.
  return badRequest(
    'malformed_multipart',
    `multipart body is malformed: ${(err as Error).message}`,
  );
}

/**
 * A client that stops sending mid-upload would hold its transaction, and so a
 * database connection, until the whole-request timeout (minutes). This fires
 * after `ms` without a byte, but not while the request is paused by our own
 * backpressure (the database being slow is not the client's fault).
 */
function idleWatch(req: IncomingMessage, ms: number, onIdle: () => void) {
  let timer: NodeJS.Timeout | undefined;
  const check = () => {
    if (req.readableFlowing === false) return rearm();
    onIdle();
  };
  const rearm = () => {
    if (ms <= 0) return;
    clearTimeout(timer);
    timer = setTimeout(check, ms);
    timer.unref();
  };
  rearm();
  return { rearm, stop: () => clearTimeout(timer) };
}

function uploadTooLarge(limits: MultipartLimits) {
  return tooLarge(
    'upload_too_large',
    `upload exceeds the limit of ${limits.maxUploadBytes} bytes`,
    {
      limit: limits.maxUploadBytes,
    },
  );
}

/** A queue of parts with one failure slot; iterating it waits for the next part. */
class PartChannel implements AsyncIterable<FilePart> {
  private readonly parts: FilePart[] = [];
  private current: FilePart | undefined;
  private failure: AppError | undefined;
  private ended = false;
  private wake: (() => void) | undefined;
  /** Called when the consumer takes a part: the producer may go on. */
  onTake: () => void = () => undefined;

  /** Parts handed in but not taken yet. */
  waiting() {
    return this.parts.length;
  }

  push(part: FilePart) {
    this.parts.push(part);
    this.notify();
  }

  end() {
    this.ended = true;
    this.notify();
  }

  fail(error: AppError) {
    if (this.failure) return;
    this.failure = error;
    // The consumer may be blocked reading the current part: wake it with the error.
    this.current?.stream.destroy(error);
    this.notify();
  }

  destroyPending() {
    for (const part of this.parts) part.stream.resume();
    this.parts.length = 0;
  }

  private notify() {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<FilePart> {
    for (;;) {
      if (this.failure) throw this.failure;
      const next = this.parts.shift();
      if (next) {
        this.current = next;
        this.onTake();
        yield next;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}
