import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * A connection closed after an answer sent before the request's body was
 * read goes on reading (and dropping) what the client still sends, for a
 * while, before it is closed: a "lingering close" (RFC 9112 section 9.6,
 * nginx's `lingering_close`). Closed at once, the server's TCP stack answers
 * the body bytes still arriving with a reset, and a client still writing its
 * body (a device uploading a few MB that gets 403, 413, 429 or 503) sees
 * `EPIPE` or `ECONNRESET` instead of the answer and its Retry-After. Bounded,
 * so that a refused client cannot keep the server reading: at most
 * LINGER_BYTES, LINGER_MS in all and LINGER_IDLE_MS between two reads; the
 * socket is closed as soon as the body has ended.
 */
export const LINGER_MS = 5_000;
export const LINGER_IDLE_MS = 2_000;
export const LINGER_BYTES = 16 * 1024 * 1024;

const lingering = new WeakSet<Socket>();

/** Answers with `Connection: close`; an unread body is read and dropped, bounded, before the close. */
export function closeAfterAnswer(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('Connection', 'close');
  if (req.complete) return;
  const socket = req.socket;
  if (lingering.has(socket)) return;
  lingering.add(socket);
  // Counted from now on, by a reader of our own: a body nobody has read when
  // the answer goes out is otherwise "dumped" by Node, whose parser then drops
  // its bytes before any 'data' event, and the limits below would count none
  // (closed 2 s after the answer however fast the client sent, and never at
  // 16 MiB: test/hostile/sixth-pass.test.ts).
  let read = 0;
  let onRead = () => {};
  const count = (chunk: Buffer) => {
    read += chunk.length;
    onRead();
  };
  req.on('data', count);
  // Node's HTTP server calls destroySoon() once an answer with
  // `Connection: close` has gone out: end our side, keep reading.
  socket.destroySoon = function lingerThenDestroy(this: Socket) {
    if (this.writable) this.end();
    const destroy = () => {
      clearTimeout(total);
      clearTimeout(idle);
      if (this.writableFinished) this.destroy();
      else this.once('finish', () => this.destroy());
    };
    const total = setTimeout(destroy, LINGER_MS).unref();
    let idle = setTimeout(destroy, LINGER_IDLE_MS).unref();
    // Whatever read the body before the answer (a parser, the body guard) is done with it.
    req.unpipe();
    for (const listener of req.listeners('data')) {
      if (listener !== count) req.off('data', listener as (...args: unknown[]) => void);
    }
    req.removeAllListeners('readable');
    onRead = () => {
      clearTimeout(idle);
      if (read > LINGER_BYTES) destroy();
      else idle = setTimeout(destroy, LINGER_IDLE_MS).unref();
    };
    req.once('end', destroy);
    req.once('error', destroy);
    this.once('close', () => {
      clearTimeout(total);
      clearTimeout(idle);
    });
    if (req.readableEnded || read > LINGER_BYTES) destroy();
    else req.resume();
  };
}

/**
 * The request listener, except on a connection that answered `Connection:
 * close` and is only lingering: a request sent after the body there is not
 * served (RFC 9112: no further requests on that connection); the connection
 * is closed at once.
 */
export function refusingWhileLingering(listener: RequestListener): RequestListener {
  return (req: IncomingMessage, res: ServerResponse) => {
    if (lingering.has(req.socket)) {
      req.socket.destroy();
      return;
    }
    listener(req, res);
  };
}
