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
    let read = 0;
    // Whatever read the body before the answer (a parser, the body guard) is done with it.
    req.unpipe();
    req.removeAllListeners('data');
    req.removeAllListeners('readable');
    req.on('data', (chunk: Buffer) => {
      read += chunk.length;
      clearTimeout(idle);
      if (read > LINGER_BYTES) destroy();
      else idle = setTimeout(destroy, LINGER_IDLE_MS).unref();
    });
    req.once('end', destroy);
    req.once('error', destroy);
    this.once('close', () => {
      clearTimeout(total);
      clearTimeout(idle);
    });
    req.resume();
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
