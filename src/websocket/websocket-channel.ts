import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type http from 'node:http';
import type https from 'node:https';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { requireActiveCertificate } from '../devices/device-auth.js';
import { deviceEvents } from '../devices/device-events.js';
import { findRefusedCertificates } from '../devices/device.repository.js';
import { AppError, badRequest, notFound } from '../http/app-error.js';
import { toHttpError } from '../http/error-handler.js';
import { storeMessages, type MessageDeps } from '../messages/messages.service.js';
import { countOpenConnection } from '../observability/metrics.js';
import { originAssigner } from '../proxy/request-origin.js';
import type { CertificateInfo } from '../tls/certificate-info.js';
import { requireClientCertificate } from '../tls/client-certificate.js';

export const WEBSOCKET_ENDPOINT = '/device_endpoint/ws';

/** Close codes (RFC 6455 §7.4.1): 1008 policy violation (revoked), 1001 going away (drain). */
const CLOSE_POLICY = 1008;
const CLOSE_GOING_AWAY = 1001;
const ID_MAX = 128;
/**
 * Messages of one connection read but not yet answered. Beyond it the socket
 * is paused (TCP backpressure) until the queue drains, so a device that sends
 * faster than its messages are stored cannot fill the server's memory.
 */
export const WS_MAX_QUEUED_MESSAGES = 16;
/**
 * Bytes of answers (acks, errors, pongs) written but not yet taken by the
 * peer. Beyond it the socket is not read until they drain: a device that
 * sends and never reads cannot make the server buffer its answers without
 * bound (an error frame is larger than the frame that caused it).
 */
export const WS_MAX_UNSENT_BYTES = 256 * 1024;

interface Connection {
  ws: WebSocket;
  deviceId: number;
  certificate: CertificateInfo;
  alive: boolean;
  /** Messages are stored one after the other, in the order sent. */
  queue: Promise<void>;
  /** Messages received and not yet answered (see WS_MAX_QUEUED_MESSAGES). */
  queued: number;
  /** Answers over WS_MAX_UNSENT_BYTES wait for the peer to read them. */
  writeBlocked: boolean;
}

export interface WebSocketChannel {
  /** Open connections (for tests and metrics). */
  connections(): number;
  close(): Promise<void>;
}

/**
 * The WebSocket device channel on the device listener (issue 13). The device
 * is its certificate, read from the upgrade request exactly as for HTTP
 * (the TLS socket, or nginx's header from a trusted proxy). Each message is
 * stored through the one ingest path (storeMessages) and acknowledged only
 * after its commit. The device is looked up again for every message, and a
 * revocation closes its sockets at once, on whichever node or CLI it was made
 * (devices/device-events.ts), or within `revocationPollMs` when that news was
 * missed (this node's event bus reconnecting).
 */
export function attachWebSocketChannel(
  server: http.Server | https.Server,
  deps: MessageDeps,
  log: Logger,
): WebSocketChannel {
  const settings = deps.config.websocket;
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: deps.config.limits.maxMessageBytes,
    clientTracking: false,
  });
  const assignOrigin = originAssigner(deps.config.proxy);
  const byDevice = new Map<number, Set<Connection>>();
  /** Upgrades being authenticated, per device: they count against the limit. */
  const opening = new Map<number, number>();
  let closing = false;

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    upgrade(req, socket, head).catch((err: unknown) => refuseUpgrade(socket, err, log));
  };

  async function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
    if (closing) throw new AppError(503, 'draining', 'the server is shutting down');
    const path = (req.url ?? '').split('?')[0];
    if (path !== WEBSOCKET_ENDPOINT) throw notFound('not_found', `no WebSocket at ${path}`);
    assignOrigin(req);
    const certificate = requireClientCertificate(req);
    const device = await requireActiveCertificate(deps.db, certificate);
    const id = device.deviceId;
    const open = (byDevice.get(id)?.size ?? 0) + (opening.get(id) ?? 0);
    if (open >= settings.maxConnectionsPerDevice) {
      throw new AppError(
        429,
        'too_many_connections',
        `this device already has ${open} WebSocket connections, the most allowed (FLEETGATE_WS_MAX_CONNECTIONS_PER_DEVICE=${settings.maxConnectionsPerDevice})`,
      );
    }
    opening.set(id, (opening.get(id) ?? 0) + 1);
    let reserved = true;
    const release = () => {
      if (!reserved) return;
      reserved = false;
      opening.set(id, opening.get(id)! - 1);
      if (opening.get(id) === 0) opening.delete(id);
    };
    // ws drops a socket that closed meanwhile or sent a bad handshake without
    // calling back: the reserved slot must be given back then too.
    socket.once('close', release);
    wss.handleUpgrade(req, socket, head, (ws) => {
      socket.off('close', release);
      release();
      accept(ws, socket, id, certificate);
    });
  }

  function accept(ws: WebSocket, socket: Duplex, deviceId: number, certificate: CertificateInfo) {
    const connection: Connection = {
      ws,
      deviceId,
      certificate,
      alive: true,
      queue: Promise.resolve(),
      queued: 0,
      writeBlocked: false,
    };
    // Read while fewer than WS_MAX_QUEUED_MESSAGES wait to be stored and the
    // peer takes its answers; otherwise leave the frames in the socket (TCP backpressure).
    const flow = () => {
      connection.writeBlocked = ws.bufferedAmount > WS_MAX_UNSENT_BYTES;
      const hold = connection.queued >= WS_MAX_QUEUED_MESSAGES || connection.writeBlocked;
      if (hold && !ws.isPaused) ws.pause();
      else if (!hold && ws.isPaused && ws.readyState === WebSocket.OPEN) ws.resume();
    };
    socket.on('drain', flow);
    // ws answers a ping with a pong by itself: a ping flood is answers too.
    ws.on('ping', flow);
    const set = byDevice.get(deviceId) ?? new Set();
    byDevice.set(deviceId, set);
    set.add(connection);
    ws.on('pong', () => (connection.alive = true));
    ws.on('error', () => undefined);
    const closed = countOpenConnection('websocket');
    ws.on('close', () => {
      closed();
      set.delete(connection);
      if (set.size === 0 && byDevice.get(deviceId) === set) byDevice.delete(deviceId);
    });
    ws.on('message', (data, isBinary) => {
      connection.queued += 1;
      flow();
      connection.queue = connection.queue
        .then(() => handleMessage(connection, data, isBinary))
        .finally(() => {
          connection.queued -= 1;
          flow();
        });
    });
  }

  async function handleMessage(connection: Connection, data: RawData, isBinary: boolean) {
    const { ws } = connection;
    if (ws.readyState !== WebSocket.OPEN) return;
    let id: string | number | null = null;
    try {
      if (isBinary) throw badRequest('invalid_message', 'send messages as text frames of JSON');
      const text = rawText(data);
      let message: unknown;
      try {
        message = JSON.parse(text);
      } catch {
        throw badRequest('invalid_json', 'the frame is not valid JSON');
      }
      if (typeof message !== 'object' || message === null || Array.isArray(message)) {
        throw badRequest('invalid_message', 'a message is a JSON object');
      }
      const fields = message as Record<string, unknown>;
      if (isId(fields.id)) id = fields.id;
      if (fields.type !== 'message') {
        throw badRequest('invalid_message', 'the "type" of a message must be "message"');
      }
      if (!isId(fields.id)) {
        throw badRequest(
          'invalid_message',
          `a message needs an "id": a string of 1-${ID_MAX} characters or a number`,
        );
      }
      const { summary } = await storeMessages(deps, connection.certificate, message, text);
      send(ws, { type: 'ack', id, stored: summary.stored, duplicates: summary.duplicates });
    } catch (err) {
      const error = toHttpError(err);
      if (error.status >= 500) log.warn({ err, code: error.code }, 'WebSocket message failed');
      send(ws, {
        type: 'error',
        id,
        code: error.code,
        error: error.message,
        ...(error.details ? { details: error.details } : {}),
      });
      if (error.status === 401 || error.status === 403) ws.close(CLOSE_POLICY, error.code);
    }
  }

  /**
   * Closes these open connections, and says so (with what told: the news of
   * devices/device-events.ts or the poll). One already closing is left be.
   */
  const closeConnections = (
    connections: Iterable<Connection>,
    reason: string,
    by: 'news' | 'poll',
  ) => {
    const devices = new Set<number>();
    let closed = 0;
    for (const connection of connections) {
      if (connection.ws.readyState !== WebSocket.OPEN) continue;
      closed++;
      devices.add(connection.deviceId);
      connection.ws.close(CLOSE_POLICY, reason);
      // A peer that does not answer the close handshake is cut shortly after.
      setTimeout(() => connection.ws.terminate(), 1000).unref();
    }
    if (closed > 0) {
      log.info(
        { reason, by, connections: closed, devices: [...devices] },
        'WebSocket connections closed',
      );
    }
  };
  const onRevoked = (deviceId: number) =>
    closeConnections(byDevice.get(deviceId) ?? [], 'device_revoked', 'news');
  deviceEvents.on('revoked', onRevoked);
  const onCertificatesRefused = (fingerprints: readonly string[]) => {
    const refused = new Set(fingerprints);
    const held = [...byDevice.values()].flatMap((set) => [...set]);
    closeConnections(
      held.filter((c) => refused.has(c.certificate.fingerprint)),
      'certificate_refused',
      'news',
    );
  };
  deviceEvents.on('certificatesRefused', onCertificatesRefused);

  // What no news told (a change made by a node on older code, a notification
  // missed while the bus reconnected, a certificate whose grace period ended)
  // is caught here, per connection (the conditions of requireActiveCertificate,
  // as for MQTT).
  let polling = false;
  const poll = setInterval(() => {
    if (polling || byDevice.size === 0) return;
    polling = true;
    const open = [...byDevice.values()].flatMap((set) => [...set]);
    const fingerprints = new Set(open.map((connection) => connection.certificate.fingerprint));
    findRefusedCertificates(deps.db, [...fingerprints])
      .then((refused) => {
        const gone = new Set(refused);
        closeConnections(
          open.filter((connection) => gone.has(connection.certificate.fingerprint)),
          'device_revoked',
          'poll',
        );
      })
      .catch((err: unknown) => log.debug({ err }, 'revocation poll failed'))
      .finally(() => (polling = false));
  }, settings.revocationPollMs);
  poll.unref();

  const heartbeat = setInterval(() => {
    for (const set of byDevice.values()) {
      for (const connection of set) {
        // A socket paused by the server (its queue is full) cannot read the
        // pong: that is the server's wait, not a dead peer. One paused because
        // the peer does not take its answers is the peer's fault.
        const serversWait = connection.ws.isPaused && !connection.writeBlocked;
        if (!connection.alive && !serversWait) {
          connection.ws.terminate();
          continue;
        }
        connection.alive = false;
        connection.ws.ping();
      }
    }
  }, settings.pingIntervalMs);
  heartbeat.unref();

  server.on('upgrade', onUpgrade);

  return {
    connections: () => [...byDevice.values()].reduce((n, set) => n + set.size, 0),
    async close() {
      closing = true;
      server.off('upgrade', onUpgrade);
      deviceEvents.off('revoked', onRevoked);
      deviceEvents.off('certificatesRefused', onCertificatesRefused);
      clearInterval(poll);
      clearInterval(heartbeat);
      const all = [...byDevice.values()].flatMap((set) => [...set]);
      // Messages in flight finish (their acks are sent) before the close.
      await Promise.all(all.map((c) => c.queue));
      for (const connection of all) connection.ws.close(CLOSE_GOING_AWAY, 'server shutting down');
      setTimeout(() => all.forEach((c) => c.ws.terminate()), 1000).unref();
      wss.close();
    },
  };
}

function isId(value: unknown): value is string | number {
  return (
    (typeof value === 'string' && value.length >= 1 && value.length <= ID_MAX) ||
    (typeof value === 'number' && Number.isFinite(value))
  );
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

function send(ws: WebSocket, body: Record<string, unknown>) {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(body));
}

/** An upgrade refused before the handshake gets the usual JSON error as an HTTP answer. */
function refuseUpgrade(socket: Duplex, err: unknown, log: Logger) {
  const error = toHttpError(err);
  if (error.status >= 500) log.warn({ err }, 'WebSocket upgrade failed');
  if (!socket.writable) return socket.destroy();
  const body = JSON.stringify({ error: error.message, code: error.code });
  const headers = Object.entries(error.headers ?? {})
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  socket.end(
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ''}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      headers +
      'Connection: close\r\n\r\n' +
      body,
  );
}
