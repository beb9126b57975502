import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import busboy from 'busboy';
import { AppError, badRequest, tooLarge } from '../http/app-error.js';

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
 * time. Busboy only parses further as the current part's stream is read, so a
 * slow consumer (the database) slows the client down instead of filling memory.
 * Any limit or syntax problem ends the sequence with an AppError; stopping the
 * iteration early detaches the parser from the request.
 */
export async function* multipartFileParts(
  req: IncomingMessage,
  limits: MultipartLimits,
): AsyncGenerator<FilePart> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limits.maxUploadBytes) {
    throw uploadTooLarge(limits);
  }
  const channel = new PartChannel();
  let parser: busboy.Busboy;
  try {
    parser = busboy({
      headers: req.headers,
      limits: {
        fileSize: limits.maxUploadBytes,
        files: limits.maxParts,
        parts: limits.maxParts,
        fieldSize: 1024,
        headerPairs: 16,
      },
    });
  } catch (err) {
    throw badRequest(
      'malformed_multipart',
      `multipart request not understood: ${(err as Error).message}`,
    );
  }

  let received = 0;
  const idle = idleWatch(req, limits.bodyIdleMs ?? 0, () =>
    channel.fail(
      new AppError(408, 'body_timeout', `no upload data for ${limits.bodyIdleMs} ms; giving up`),
    ),
  );
  const countBytes = (chunk: Buffer) => {
    idle.rearm();
    received += chunk.length;
    if (received > limits.maxUploadBytes) channel.fail(uploadTooLarge(limits));
  };
  const onClose = () => {
    if (!req.complete)
      channel.fail(badRequest('upload_aborted', 'the client closed the connection mid-upload'));
  };

  parser.on('file', (name, stream, info) => {
    // busboy ends a part with its own plain Error ("Unexpected end of form")
    // before the parser's 'error' event; the consumer must see a 400 instead.
    stream._destroy = (err, callback) =>
      callback(err && !(err instanceof AppError) ? malformed(err) : err);
    // A part destroyed after its reader let go (a later limit, an abort) must
    // not crash the process with an unhandled 'error'.
    stream.on('error', () => undefined);
    stream.on('limit', () => stream.destroy(uploadTooLarge(limits)));
    // An empty `name=""` reaches us as undefined; the series-name check refuses ''.
    channel.push({ name: name ?? '', filename: info.filename ?? '', stream });
  });
  parser.on('field', (name) =>
    channel.fail(
      badRequest(
        'unexpected_field',
        `part "${name}" is a form field; each series must be a file part`,
      ),
    ),
  );
  parser.on('partsLimit', () => channel.fail(tooManyParts(limits)));
  parser.on('filesLimit', () => channel.fail(tooManyParts(limits)));
  parser.on('fieldsLimit', () => channel.fail(tooManyParts(limits)));
  parser.on('error', (err: Error) => channel.fail(malformed(err)));
  parser.on('close', () => channel.end());
  req.on('data', countBytes);
  req.on('close', onClose);
  req.pipe(parser);

  try {
    yield* channel;
  } finally {
    idle.stop();
    req.off('data', countBytes);
    req.off('close', onClose);
    req.unpipe(parser);
    parser.removeAllListeners('file');
    channel.destroyPending();
  }
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

function malformed(err: Error) {
  return badRequest('malformed_multipart', `multipart body is malformed: ${err.message}`);
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

function tooManyParts(limits: MultipartLimits) {
  return tooLarge('too_many_parts', `upload has more than ${limits.maxParts} parts`, {
    limit: limits.maxParts,
  });
}

/** A queue of parts with one failure slot; iterating it waits for the next part. */
class PartChannel implements AsyncIterable<FilePart> {
  private readonly parts: FilePart[] = [];
  private current: FilePart | undefined;
  private failure: AppError | undefined;
  private ended = false;
  private wake: (() => void) | undefined;

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
        yield next;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}
