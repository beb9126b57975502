import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { clientErrorHandler } from '../http/error-handler.js';
import { refuseUnknownExpectation } from '../http/expect-continue.js';
import type { Config } from '../config/config.js';
import { serverTimeouts } from './server-timeouts.js';
import { ConfigError } from '../config/config.js';
import { refusingWhileLingering } from '../http/lingering-close.js';
import { rawJsonAnswer } from '../http/raw-answer.js';
import type { TlsSessionStore } from '../tls/session-store.js';
import {
  enableResumption,
  httpsOptions,
  loadServerTlsMaterial,
  type SharedTicketKeys,
} from './tls-options.js';

export interface Listener {
  server: http.Server | https.Server;
  /** The TCP port, or null on a Unix socket. */
  port: number | null;
  socketPath: string | null;
  /** Stops timers the listener started (ticket key rotation). */
  stop(): void;
}

/**
 * Behind nginx the forwarded certificate header carries a 16 KB certificate at
 * most; leave room for it next to ordinary headers (Node's default is 16 KB).
 */
const BEHIND_PROXY_MAX_HEADER_BYTES = 64 * 1024;

/** Resumption state shared by several nodes (PostgreSQL); without it, this process's own. */
export interface SharedResumption {
  sessions: TlsSessionStore;
  ticketKeys: SharedTicketKeys;
}

/**
 * Direct mode: HTTPS with client certificates on host:port. Behind nginx:
 * plain HTTP (nginx terminated TLS) on a loopback port or a Unix socket.
 */
export async function listen(
  config: Config,
  app: http.RequestListener,
  log: Logger,
  shared?: SharedResumption,
): Promise<Listener> {
  // A connection that answered `Connection: close` before its body was read serves no more requests.
  app = refusingWhileLingering(app);
  let stop = () => {};
  let server: http.Server | https.Server;
  if (config.proxy.mode === 'nginx') {
    server = http.createServer(
      { ...serverTimeouts(config), maxHeaderSize: BEHIND_PROXY_MAX_HEADER_BYTES },
      app,
    );
  } else {
    server = createTlsServer(config, app, log);
    stop = enableResumption(
      server as https.Server,
      config,
      log,
      shared?.sessions,
      undefined,
      shared?.ticketKeys,
    ).stop;
  }
  // A client that shuts its write side once its request is out (HTTP/1.0 style,
  // `nc -N`, a FIN or a TLS close_notify) still gets its answer, then the
  // close, as from nginx. Node's default aborts the request on that FIN and
  // ends the socket, so an answer that came after it (a database lookup) was
  // lost: test/hostile/lingering-peers.test.ts.
  (server as { httpAllowHalfOpen?: boolean }).httpAllowHalfOpen = true;
  if (config.proxy.mode !== 'nginx') {
    server.on('secureConnection', (socket: TLSSocket) => {
      socket.allowHalfOpen = true;
    });
  }
  // Idle connections cost a file descriptor and memory each: bounded, and closed
  // when no request comes (keepAliveTimeout covers them after the first answer).
  server.maxConnections = config.maxConnections;
  server.on('drop', () => log.warn({ max: config.maxConnections }, 'connection limit reached'));
  closeConnectionsWithoutRequest(
    server,
    config.proxy.mode === 'nginx' ? 'connection' : 'secureConnection',
    config.timeouts.firstRequestMs,
  );
  // Expect: 100-continue is answered by the routes once they checked the device,
  // not by Node before anything was looked at.
  server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
    app(req, res);
  });
  // Any other expectation: 417 (nobody answered it while the first-request timer listened).
  server.on('checkExpectation', refuseUnknownExpectation(log));
  // Requests Node's parser refuses (huge or slow headers, garbage) get our JSON error too.
  server.on('clientError', clientErrorHandler(log));
  server.on('tlsClientError', (err: Error) =>
    log.debug({ err: err.message }, 'TLS handshake failed'),
  );
  const socketPath = config.proxy.listenSocket ?? null;
  if (socketPath) {
    fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o750 });
    await claimSocketPath(socketPath);
    // Whoever can connect to the socket can claim any certificate: owner and
    // group only (nginx's user belongs in the group), from the very first moment.
    const previousUmask = process.umask(0o117);
    try {
      await listenOn(server, () => server.listen(socketPath));
    } finally {
      process.umask(previousUmask);
    }
    fs.chmodSync(socketPath, 0o660);
    return { server, port: null, socketPath, stop };
  }
  await listenOn(server, () => server.listen(config.port, config.host));
  return { server, port: (server.address() as AddressInfo).port, socketPath: null, stop };
}

function createTlsServer(config: Config, app: http.RequestListener, log: Logger): https.Server {
  let server: https.Server;
  try {
    server = https.createServer(
      {
        ...httpsOptions(loadServerTlsMaterial(config, log), config),
        // Node's default is 120 s: a client that opens TLS and stalls holds a socket that long.
        handshakeTimeout: config.timeouts.tlsHandshakeMs,
        // With the TLS socket's own (listen()): a client's FIN does not end our side.
        allowHalfOpen: true,
      },
      app,
    );
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const setting = config.tls.ciphers ? 'FLEETGATE_TLS_CIPHERS' : 'the TLS certificates';
    throw new ConfigError(`${setting}: OpenSSL refused it (${(err as Error).message})`);
  }
  // No ALPN: Node would answer a client that offers only protocols it does not
  // list (only "h2", only "http/1.0") with the fatal alert 120. Without ALPN
  // every client carries on and speaks HTTP/1.1 (RFC 7301 lets a server ignore
  // the extension); devices need no ALPN to talk to fleetgate.
  (server as unknown as { ALPNProtocols: unknown }).ALPNProtocols = undefined;
  return server;
}

/**
 * A connection (after its TLS handshake, in direct mode) that has not sent a
 * complete first request within `ms` gets `408 request_timeout` and is closed.
 * Node's own timeouts start only once a request has begun or been answered.
 */
function closeConnectionsWithoutRequest(
  server: http.Server | https.Server,
  event: 'connection' | 'secureConnection',
  ms: number,
): void {
  const timers = new WeakMap<net.Socket, NodeJS.Timeout>();
  server.on(event, (socket: net.Socket) => {
    const timer = setTimeout(() => {
      timers.delete(socket);
      if (socket.destroyed) return;
      socket.end(
        rawJsonAnswer(408, {
          error: `no request within ${ms} ms of connecting`,
          code: 'request_timeout',
        }),
      );
      setTimeout(() => socket.destroy(), 1000).unref();
    }, ms);
    timer.unref();
    timers.set(socket, timer);
    socket.once('close', () => clearTimeout(timer));
  });
  const sawRequest = (req: http.IncomingMessage) => {
    const timer = timers.get(req.socket);
    if (timer) {
      clearTimeout(timer);
      timers.delete(req.socket);
    }
  };
  server.prependListener('request', sawRequest);
  server.prependListener('checkContinue', sawRequest);
  server.prependListener('checkExpectation', sawRequest);
  // A WebSocket upgrade is a request too: without this the timer wrote an HTTP
  // 408 into the upgraded socket (a broken frame) and closed every WebSocket.
  server.prependListener('upgrade', sawRequest);
}

function listenOn(server: net.Server, start: () => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', () => {
      server.off('error', reject);
      resolve();
    });
    start();
  });
}

/** A socket file left by a crashed run is replaced; a live one or any other file is not. */
async function claimSocketPath(socketPath: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(socketPath);
  } catch {
    return;
  }
  if (!stat.isSocket()) {
    throw new Error(`${socketPath} exists and is not a socket; refusing to replace it`);
  }
  const inUse = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (inUse) throw new Error(`${socketPath} is in use by another running server`);
  fs.rmSync(socketPath, { force: true });
}
