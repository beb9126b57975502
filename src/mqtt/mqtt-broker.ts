import crypto from 'node:crypto';
import type { AddressInfo } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { Aedes, type Client, type PublishPacket, type Subscription } from 'aedes';
import type { Logger } from 'pino';
import { requireActiveCertificate } from '../devices/device-auth.js';
import { deviceEvents } from '../devices/device-events.js';
import { findDeviceNames } from '../devices/device-state.repository.js';
import { recordDeviceState } from '../devices/device-state.service.js';
import { findRefusedCertificates } from '../devices/device.repository.js';
import { AppError, forbidden } from '../http/app-error.js';
import { toHttpError } from '../http/error-handler.js';
import type { MessageDeps } from '../messages/messages.service.js';
import { countMqttPublish, watchMqttConnections } from '../observability/metrics.js';
import { httpsOptions, type ServerTlsMaterial } from '../server/tls-options.js';
import type { NamedPolicy } from '../throttle/throttle-store.js';
import type { CertificateInfo } from '../tls/certificate-info.js';
import { requireSocketCertificate } from '../tls/client-certificate.js';
import { answerRequest } from './mqtt-requests.js';
import {
  classifyPublish,
  maySubscribe,
  responseTopic,
  topicOwner,
  type TopicOwner,
} from './mqtt-topics.js';

/** CONNACK return codes of MQTT 3.1.1 (§3.2.2.3). */
const SERVER_UNAVAILABLE = 3;
const NOT_AUTHORIZED = 5;
/** Room for a PUBLISH's topic (up to 65535 bytes) and header next to its payload. */
const PACKET_OVERHEAD_BYTES = 65_600;
/** Completed QoS 1 publishes remembered per device, to recognise a DUP retry. */
const REMEMBERED_PUBLISHES = 256;
/**
 * Filters in one SUBSCRIBE. A device needs a few (its RES topics, per name
 * and endpoint); a packet over it closes the connection before any is handled.
 */
export const MQTT_MAX_FILTERS_PER_SUBSCRIBE = 64;

interface Session {
  deviceId: number;
  certificate: CertificateInfo;
  owner: TopicOwner;
  /** Publishes are handled one after the other, so PUBACKs keep their order (§4.6). */
  queue: Promise<void>;
  pending: number;
  paused: boolean;
  /** Subscriptions refused on this connection (logged at 1, 2, 4, 8, ...). */
  refusedSubscriptions: number;
}

export interface MqttBroker {
  port: number;
  /** Open connections of authenticated devices (for tests and metrics). */
  connections(): number;
  close(): Promise<void>;
}

/**
 * The MQTT device channel (issue 13): aedes served over node:tls with the
 * device listener's TLS policy (client certificates requested, self-signed
 * ones accepted, checked by fleetgate). The device is its certificate: at
 * CONNECT it must belong to an active device, or the CONNACK says "not
 * authorized". Topics and ACLs are in mqtt-topics.ts; a publish outside them
 * disconnects the client, a subscription outside them is granted 0x80.
 * Requests are stored through the one ingest path and their PUBACK is sent
 * only after the commit (aedes writes the PUBACK after authorizePublish).
 */
export async function startMqttBroker(
  deps: MessageDeps,
  material: ServerTlsMaterial,
  log: Logger,
): Promise<MqttBroker> {
  const settings = deps.config.mqtt;
  const sessions = new WeakMap<Client, Session>();
  const byDevice = new Map<number, Set<Client>>();
  /** Will messages accepted at CONNECT (on the device's state topic only). */
  const wills = new WeakSet<object>();
  const completed = new Map<number, Map<string, string>>();
  // In the shared throttle store (PostgreSQL or Redis on a server): N nodes give a device one budget.
  const messagePolicy: NamedPolicy | null =
    settings.messagesPerMinute > 0
      ? {
          name: 'mqtt_messages_by_device',
          capacity: settings.messagesPerMinute,
          windowMs: 60_000,
          perDevice: true,
        }
      : null;

  const broker = await Aedes.createBroker({
    connectTimeout: deps.config.timeouts.firstRequestMs,
    // Inbound QoS 2 is refused anyway; keep aedes' own window small.
    maxInflightInbound: settings.maxInflight,
    authenticate(client, _username, _password, done) {
      authenticate(client).then(
        () => done(null, true),
        (err: unknown) => {
          const error = toHttpError(err);
          const code =
            error.status === 429 || error.status >= 500 ? SERVER_UNAVAILABLE : NOT_AUTHORIZED;
          log.info({ code: error.code }, 'MQTT connection refused');
          done(Object.assign(new Error(error.message), { returnCode: code }), false);
        },
      );
    },
    authorizePublish(client, packet, done) {
      if (!client) return done(null);
      const session = sessions.get(client);
      if (!session) return done(new Error('not authenticated'));
      session.pending += 1;
      if (session.pending >= settings.maxInflight && !session.paused) {
        session.paused = true;
        flow(client).pause();
      }
      session.queue = session.queue
        .then(() => handlePublish(client, session, packet))
        .then(
          () => done(null),
          (err: unknown) => done(err as Error),
        )
        .finally(() => {
          session.pending -= 1;
          if (session.pending < settings.maxInflight && session.paused) {
            session.paused = false;
            flow(client).resume();
          }
        });
    },
    authorizeSubscribe(client, sub, done) {
      const session = sessions.get(client);
      if (!session || !maySubscribe(session.owner, sub.topic)) {
        // One SUBSCRIBE can carry thousands of filters: log a bounded number of lines.
        const refused = session ? ++session.refusedSubscriptions : 1;
        if ((refused & (refused - 1)) === 0) {
          log.info({ topic: clip(sub.topic), refused }, 'MQTT subscribe outside the ACL refused');
        }
        return done(null, null);
      }
      // QoS 0 and 1 only (issue 13).
      const granted: Subscription = { ...sub, qos: sub.qos > 1 ? 1 : sub.qos };
      done(null, granted);
    },
  });
  broker.on('clientError', (_client, err) => log.debug({ err: err.message }, 'MQTT client error'));
  broker.on('connectionError', (_client, err) =>
    log.debug({ err: err.message }, 'MQTT connection error'),
  );

  async function authenticate(client: Client): Promise<void> {
    const certificate = requireSocketCertificate(client.conn as TLSSocket);
    const device = await requireActiveCertificate(deps.db, certificate);
    const names = await findDeviceNames(deps.db, device.deviceId);
    const owner = topicOwner(device.identityName, certificate.fingerprint, names);
    const will = (client as unknown as { _will?: { topic: string } | null })._will;
    if (will) {
      if (classifyPublish(owner, will.topic)?.kind !== 'state') {
        throw forbidden('will_outside_acl', 'a will message may only go to the device state topic');
      }
      wills.add(will);
    }
    const open = byDevice.get(device.deviceId) ?? new Set<Client>();
    if (open.size >= settings.maxConnectionsPerDevice) {
      throw new AppError(
        429,
        'too_many_connections',
        `this device already has ${open.size} MQTT connections, the most allowed (FLEETGATE_MQTT_MAX_CONNECTIONS_PER_DEVICE)`,
      );
    }
    // Sessions (subscriptions, client id takeover) are per device: another
    // device using the same client id can neither take them nor end them.
    client.id = `${device.deviceId}/${client.id}`;
    sessions.set(client, {
      deviceId: device.deviceId,
      certificate,
      owner,
      queue: Promise.resolve(),
      pending: 0,
      paused: false,
      refusedSubscriptions: 0,
    });
    byDevice.set(device.deviceId, open);
    open.add(client);
    client.conn.once('close', () => {
      open.delete(client);
      if (open.size === 0 && byDevice.get(device.deviceId) === open) {
        byDevice.delete(device.deviceId);
      }
    });
  }

  async function handlePublish(client: Client, session: Session, packet: PublishPacket) {
    const isWill = wills.has(packet);
    const target = classifyPublish(session.owner, packet.topic);
    const refuse = (outcome: string, why: string) => {
      countMqttPublish(outcome);
      log.info({ topic: clip(packet.topic), why }, 'MQTT publish refused, client disconnected');
      return new Error(why);
    };
    if (!target) throw refuse('outside_acl', 'publish outside the ACL');
    if (packet.qos > 1) throw refuse('qos_not_supported', 'QoS 2 is not supported');
    const payload = Buffer.isBuffer(packet.payload)
      ? packet.payload
      : Buffer.from(packet.payload, 'utf8');
    if (payload.length > settings.maxPayloadBytes) {
      throw refuse('payload_too_large', `payload over ${settings.maxPayloadBytes} bytes`);
    }
    // Nothing a device publishes is kept for later subscribers.
    packet.retain = false;
    if (
      messagePolicy &&
      !isWill &&
      !(await deps.throttles.store.take(messagePolicy, String(session.deviceId))).allowed
    ) {
      countMqttPublish('too_many_requests');
      if (target.kind === 'request') {
        await respond(session, target.device, target.endpoint, {
          status: 0,
          code: 429,
          id: null,
          data: {
            error: `more than ${settings.messagesPerMinute} messages per minute (FLEETGATE_MQTT_MESSAGES_PER_MINUTE)`,
            code: 'too_many_requests',
          },
        });
      }
      return;
    }
    if (target.kind === 'state') {
      try {
        await recordDeviceState(deps.db, session.certificate, payload);
        countMqttPublish('ok');
      } catch (err) {
        const error = toHttpError(err);
        countMqttPublish(error.code);
        log.info(
          { code: error.code, error: error.message },
          'MQTT state refused, nothing recorded',
        );
        if (error.status >= 500) throw err;
      }
      return;
    }
    // A retry (DUP) of a publish already answered stores nothing again.
    const digest = crypto.createHash('sha256').update(payload).digest('base64');
    const remembered = completed.get(session.deviceId) ?? new Map<string, string>();
    const retryKey = `${client.id}\u0000${packet.messageId ?? ''}\u0000${packet.topic}`;
    if (packet.qos === 1 && packet.dup && remembered.get(retryKey) === digest) {
      countMqttPublish('duplicate_delivery');
      return;
    }
    const response = await answerRequest(deps, session.certificate, target.endpoint, payload);
    countMqttPublish(response.status === 1 ? 'ok' : String(response.code));
    if (response.code >= 500) throw new Error(`request failed with ${response.code}`);
    if (packet.qos === 1) {
      remembered.delete(retryKey);
      remembered.set(retryKey, digest);
      if (remembered.size > REMEMBERED_PUBLISHES)
        remembered.delete(remembered.keys().next().value!);
      completed.set(session.deviceId, remembered);
    }
    await respond(session, target.device, target.endpoint, response);
  }

  function respond(session: Session, device: string, endpoint: string, body: unknown) {
    return new Promise<void>((resolve) => {
      broker.publish(
        {
          cmd: 'publish',
          topic: responseTopic(session.owner, device, endpoint),
          payload: Buffer.from(JSON.stringify(body)),
          qos: 1,
          retain: false,
          dup: false,
        },
        () => resolve(),
      );
    });
  }

  /**
   * Closes these connections, and says so (with what told: the news of
   * devices/device-events.ts or the poll). One already closed is left be.
   */
  const closeClients = (clients: Iterable<Client>, reason: string, by: 'news' | 'poll') => {
    const devices = new Set<number>();
    let closed = 0;
    for (const client of clients) {
      if (client.closed) continue;
      closed++;
      devices.add(sessions.get(client)!.deviceId);
      client.close();
    }
    if (closed > 0) {
      log.info(
        { reason, by, connections: closed, devices: [...devices] },
        'MQTT connections closed',
      );
    }
  };
  const closeDevice = (deviceId: number) =>
    closeClients(byDevice.get(deviceId) ?? [], 'device_revoked', 'news');
  deviceEvents.on('revoked', closeDevice);
  // A session is held by a certificate, and a retired one still matches the
  // device's name topics: a certificate retired at once or revoked by its
  // CA's CRL closes its sessions too.
  const closeCertificates = (fingerprints: readonly string[]) => {
    const refused = new Set(fingerprints);
    const open = [...byDevice.values()].flatMap((set) => [...set]);
    closeClients(
      open.filter((client) => refused.has(sessions.get(client)!.certificate.fingerprint)),
      'certificate_refused',
      'news',
    );
  };
  deviceEvents.on('certificatesRefused', closeCertificates);
  // What the news missed (this node's bus reconnecting) and a retirement
  // whose grace period ends are caught here.
  let polling = false;
  const poll = setInterval(() => {
    if (polling || byDevice.size === 0) return;
    polling = true;
    const open = [...byDevice.values()].flatMap((set) => [...set]);
    const fingerprints = new Set(
      open.map((client) => sessions.get(client)!.certificate.fingerprint),
    );
    findRefusedCertificates(deps.db, [...fingerprints])
      .then((refused) => {
        const gone = new Set(refused);
        const held = open.filter((client) =>
          gone.has(sessions.get(client)!.certificate.fingerprint),
        );
        closeClients(held, 'certificate_refused', 'poll');
      })
      .catch((err: unknown) => log.debug({ err }, 'MQTT revocation poll failed'))
      .finally(() => (polling = false));
  }, settings.revocationPollMs);
  poll.unref();

  const server = tls.createServer(
    {
      ...httpsOptions(material, deps.config),
      handshakeTimeout: deps.config.timeouts.tlsHandshakeMs,
    },
    (socket) => {
      socket.on('error', () => undefined);
      const client = broker.handle(socket);
      limitPacketLength(client, maxPacketBytes(settings.maxPayloadBytes), log);
      limitSubscribe(client, log);
    },
  );
  server.maxConnections = deps.config.maxConnections;
  server.on('tlsClientError', (err: Error) =>
    log.debug({ err: err.message }, 'MQTT TLS handshake failed'),
  );
  const port = settings.port === 'off' ? 0 : settings.port;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, deps.config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const connections = () => [...byDevice.values()].reduce((n, set) => n + set.size, 0);
  const unwatch = watchMqttConnections(connections);
  return {
    port: (server.address() as AddressInfo).port,
    connections,
    async close() {
      unwatch();
      clearInterval(poll);
      deviceEvents.off('revoked', closeDevice);
      deviceEvents.off('certificatesRefused', closeCertificates);
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      // Publishes in flight finish (their PUBACKs are sent) before the close.
      const all = [...byDevice.values()].flatMap((set) => [...set]);
      await Promise.all(all.map((client) => sessions.get(client)?.queue));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      for (const client of all) client.conn.destroy();
      await stopped;
    },
  };
}

/**
 * The largest MQTT packet read: a payload of the configured limit plus a
 * topic (at most 65,535 bytes) and headers. A CONNECT (client id, will) fits
 * in it too.
 */
export function maxPacketBytes(maxPayloadBytes: number): number {
  return maxPayloadBytes + PACKET_OVERHEAD_BYTES;
}

/**
 * MQTT.js's parser (inside aedes) buffers a packet whole before anything sees
 * it, up to the 256 MB the remaining-length field can declare, and it does so
 * before CONNECT is authenticated: any TLS client could make the node hold
 * hundreds of megabytes per connection. The declared length is checked as
 * soon as it is read, and a packet over the limit ends the connection.
 */
function limitPacketLength(client: Client, maxBytes: number, log: Logger): void {
  const parser = (client as unknown as { _parser?: PacketParser })._parser;
  if (!parser || typeof parser._parseLength !== 'function') {
    // Never serve unbounded reads: an aedes that changed its parser refuses connections.
    log.error('aedes changed its parser: cannot limit the MQTT packet length, connection closed');
    client.conn.destroy();
    return;
  }
  const parseLength = parser._parseLength.bind(parser);
  parser._parseLength = () => {
    const complete = parseLength();
    if (complete && parser.packet.length > maxBytes) {
      log.info({ declared: parser.packet.length, max: maxBytes }, 'MQTT packet too large, closed');
      countMqttPublish('packet_too_large');
      client.conn.destroy();
      return false;
    }
    return complete;
  };
}

/**
 * Checks a SUBSCRIBE as it is parsed, before aedes handles it (the listener
 * is prepended):
 * - more than MQTT_MAX_FILTERS_PER_SUBSCRIBE filters close the connection,
 *   and aedes gets only the first one (of a closed client), so a 300 KB
 *   SUBSCRIBE cannot make the node authorize, answer and log 45,000 filters;
 * - aedes answers with the QoS the client asked for, read before
 *   authorizeSubscribe can lower it, and persists the list as asked. fleetgate
 *   delivers at QoS 1 at most, so a QoS 2 request is lowered to 1 here: the
 *   SUBACK says 1 (MQTT 3.1.1 §3.9.3), and a persistent session stores 1.
 */
function limitSubscribe(client: Client, log: Logger): void {
  const parser = (client as unknown as { _parser?: PacketParser })._parser;
  parser?.prependListener('packet', (packet: { cmd?: string; subscriptions?: unknown }) => {
    if (packet.cmd !== 'subscribe' || !Array.isArray(packet.subscriptions)) return;
    const subscriptions = packet.subscriptions as Array<{ qos?: number }>;
    if (subscriptions.length > MQTT_MAX_FILTERS_PER_SUBSCRIBE) {
      log.info(
        { filters: subscriptions.length, max: MQTT_MAX_FILTERS_PER_SUBSCRIBE },
        'MQTT SUBSCRIBE with too many filters, closed',
      );
      client.conn.destroy();
      subscriptions.length = 1;
    }
    for (const sub of subscriptions) {
      if (typeof sub.qos === 'number' && sub.qos > 1) sub.qos = 1;
    }
  });
}

/** The part of mqtt-packet's parser (untyped) the length limit and QoS grant hook into. */
interface PacketParser {
  packet: { length: number };
  _parseLength(): boolean;
  prependListener(event: 'packet', listener: (packet: never) => void): void;
}

/** aedes' reading switch (untyped): a paused client's socket is not read (TCP backpressure). */
function flow(client: Client): { pause(): void; resume(): void } {
  return client as unknown as { pause(): void; resume(): void };
}

function clip(text: string): string {
  return text.length > 80 ? `${text.slice(0, 80)}...` : text;
}
