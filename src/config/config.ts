import { isIP } from 'node:net';
import path from 'node:path';
import { z } from 'zod';

/**
 * All configuration is read here, once, from the environment plus CLI flags,
 * validated, and frozen. Nothing else in the code reads process.env.
 */
const intFrom = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** An IP address or a CIDR block such as 10.0.0.0/8 or fd00::/8. */
const ipOrCidr = z.string().refine((value) => {
  const [address, bits, extra] = value.split('/');
  const family = isIP(address ?? '');
  if (!family || extra !== undefined) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}, 'must be an IP address or CIDR block');

const commaList = (value: string | undefined) =>
  value === undefined
    ? undefined
    : value
        .split(',')
        .map((item) => item.trim())
        .filter(Boolean);

/** Devices use 8443; behind nginx, nginx takes that port and the app moves to 8081. */
const DIRECT_PORT = 8443;
const BEHIND_PROXY_PORT = 8081;
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);

const postgresUrl = z
  .string()
  .url('must be a URL such as postgres://user:password@host:5432/database')
  .refine((url) => /^postgres(ql)?:\/\//i.test(url), {
    message:
      'must be a PostgreSQL URL (postgres:// or postgresql://); fleetgate stores its data in ' +
      'PostgreSQL only (leave DATABASE_URL unset for the embedded database)',
  });

const schema = z.object({
  port: intFrom(0, 65535),
  host: z.string().min(1).default('0.0.0.0'),
  databaseUrl: postgresUrl.optional(),
  /**
   * Redis for the throttle buckets of several nodes (rate-limiter-flexible);
   * unset: they live in PostgreSQL (or in memory on the embedded database).
   */
  redisUrl: z
    .string()
    .regex(/^rediss?:\/\/\S+$/i, 'must be a Redis URL such as redis://127.0.0.1:6379')
    .optional(),
  dataDir: z.string().min(1).default('./data'),
  certsDir: z.string().min(1).default('./certs'),
  tlsCert: z.string().optional(),
  tlsKey: z.string().optional(),
  /** Device-facing TLS policy, the same in direct mode and behind nginx. */
  tls: z.object({
    /** A second certificate and key, of the other key type than tlsCert (ECDSA next to RSA). */
    cert2: z.string().optional(),
    key2: z.string().optional(),
    /** `default`: AEAD only; `legacy-cbc`: adds ECDHE CBC suites for old fleets. */
    profile: z.enum(['default', 'legacy-cbc']).default('default'),
    /** An OpenSSL cipher string replacing the profile's TLS 1.2 suites. */
    ciphers: z
      .string()
      .regex(/^[A-Za-z0-9_:+!@=.-]+$/, 'must be an OpenSSL cipher string')
      .optional(),
    /** Session-ID resumption cache: most sessions kept. */
    sessionCacheSize: intFrom(0, 10_000_000).default(10_000),
    /** How long a session (cached or in a ticket) can be resumed, seconds. */
    sessionLifetimeSeconds: intFrom(1, 7 * 86_400).default(3600),
    /** Stateless resumption by session ticket (RFC 5077, TLS 1.3 tickets). */
    tickets: z.enum(['on', 'off']).default('on'),
    /** Ticket keys rotate this often; the previous key still decrypts. */
    ticketKeyRotationSeconds: intFrom(1, 7 * 86_400).default(3600),
    /** A directory holding current.key and previous.key (nginx's 48-byte format), shared by all nodes. */
    ticketKeyDir: z.string().min(1).optional(),
  }),
  migrateOnStart: z.boolean().default(true),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  admin: z.object({
    /** Loopback by default: plain HTTP there, TLS on any other address. */
    host: z.string().min(1).default('127.0.0.1'),
    /** `off`: no admin listener (the CLI still works on the database). */
    port: z
      .union([z.literal('off'), intFrom(0, 65535)], {
        error: 'must be a port number (0-65535) or "off"',
      })
      .default(8080),
    /** When set, the admin token; otherwise one is generated on first start. */
    token: z.string().min(16, 'must be at least 16 characters').max(512).optional(),
  }),
  /**
   * Who may scrape GET /metrics on the admin listener: `auto` (open when the
   * admin listener is on loopback, the admin token elsewhere), `open`, `token`.
   */
  metricsAccess: z.enum(['auto', 'open', 'token']).default('auto'),
  /** How long a SIGTERM waits for requests in flight before cutting them (rolled back). */
  drainTimeoutMs: intFrom(0, 3_600_000).default(30_000),
  /** How long a certificate replaced by rotation keeps working; 0: not at all. */
  rotationGraceMs: intFrom(0, 365 * 24 * 3_600_000).default(0),
  /** How long a proven, not yet completed rotation waits for its completion. */
  rotationPendingTtlMs: intFrom(1000, 7 * 24 * 3_600_000).default(15 * 60_000),
  /** How long a registration waits for its owner's PIN and the device's completion. */
  registrationLifetimeMs: intFrom(1000, 7 * 24 * 3_600_000).default(15 * 60_000),
  /** Shortest time between two status polls of one device; 0: no limit. */
  registrationPollIntervalMs: intFrom(0, 3_600_000).default(5_000),
  limits: z.object({
    /** Whole multipart request body, bytes. */
    maxUploadBytes: intFrom(1, Number.MAX_SAFE_INTEGER).default(256 * 1024 * 1024),
    /** Number of parts (files and fields) in one upload. */
    maxParts: intFrom(1, 100_000).default(1000),
    /** Longest accepted `epoch_ms,value` line, bytes. */
    maxLineBytes: intFrom(16, 1024 * 1024).default(1024),
    /** The bind JSON body, bytes. */
    maxJsonBytes: intFrom(64, 1024 * 1024).default(4096),
    /** How far ahead of the server clock a timestamp may be. */
    maxClockSkewMs: intFrom(0, 10 * 365 * 24 * 3600 * 1000).default(24 * 3600 * 1000),
    /**
     * The oldest accepted timestamp (2000-01-01 by default): seconds sent as
     * milliseconds land in January 1970 and are refused, and no upload can
     * create partitions for decades nobody has data for.
     */
    minTimestampMs: intFrom(0, 8_640_000_000_000).default(Date.UTC(2000, 0, 1)),
    /** Series one device may have; a new series over it refuses the upload (422). */
    maxSeriesPerDevice: intFrom(1, 1_000_000).default(1000),
    /** A JSON messages body (POST /device_endpoint/messages, one WebSocket frame), bytes. */
    maxMessageBytes: intFrom(64, 64 * 1024 * 1024).default(1024 * 1024),
    /** Fields of `data` in one JSON message. */
    maxMessageFields: intFrom(1, 100_000).default(100),
    /** Messages in one JSON array. */
    maxMessages: intFrom(1, 1_000_000).default(10_000),
  }),
  websocket: z.object({
    /** The server pings every WebSocket this often; one that missed its pong is closed. */
    pingIntervalMs: intFrom(100, 3_600_000).default(25_000),
    /** Open WebSockets one device may have at once. */
    maxConnectionsPerDevice: intFrom(1, 10_000).default(4),
    /** How often revocations made by other processes are looked for. */
    revocationPollMs: intFrom(50, 60_000).default(500),
  }),
  /** The MQTT device channel (issue 13): aedes on node:tls with the device TLS policy. */
  mqtt: z.object({
    /** `off`: no MQTT listener. 8883 is MQTT over TLS's registered port. */
    port: z
      .union([z.literal('off'), intFrom(0, 65535)], {
        error: 'must be a port number (0-65535) or "off"',
      })
      .default(8883),
    /** Largest PUBLISH payload, bytes; a larger one disconnects the client. */
    maxPayloadBytes: intFrom(64, 64 * 1024 * 1024).default(256 * 1024),
    /** QoS 1 publishes of one connection read but not yet acknowledged; beyond it reading pauses. */
    maxInflight: intFrom(1, 10_000).default(16),
    /** PUBLISH packets one device may send per minute (burst up to this many); 0: no limit. */
    messagesPerMinute: intFrom(0, 10_000_000).default(600),
    /** Open MQTT connections one device may have at once. */
    maxConnectionsPerDevice: intFrom(1, 10_000).default(4),
    /** How often revocations made by other processes are looked for. */
    revocationPollMs: intFrom(50, 60_000).default(500),
  }),
  timeouts: z.object({
    /** Time allowed to receive the request headers. */
    headersMs: intFrom(1000, 3_600_000).default(20_000),
    /** Whole request (headers and body); large uploads on slow links need minutes. */
    requestMs: intFrom(1000, 24 * 3_600_000).default(15 * 60_000),
    keepAliveMs: intFrom(1000, 3_600_000).default(65_000),
    /** An upload that sends no bytes for this long is cut off (408), its transaction rolled back. */
    bodyIdleMs: intFrom(0, 3_600_000).default(30_000),
    /** Longest wait for a free database connection before answering 503. */
    dbAcquireMs: intFrom(100, 600_000).default(30_000),
    /**
     * Slowest accepted body: every body must bring at least this many bytes per
     * second, measured over each `minBodyRateWindowMs` (0: no minimum). Beats a
     * client that trickles a byte now and then to dodge the idle timeout.
     */
    minBodyBytesPerSecond: intFrom(0, 1024 * 1024 * 1024).default(256),
    minBodyRateWindowMs: intFrom(100, 3_600_000).default(30_000),
    /** A connection that sends no request this long after it opened is closed. */
    firstRequestMs: intFrom(100, 3_600_000).default(10_000),
    /** A TLS handshake not complete in this time is abandoned (direct mode). */
    tlsHandshakeMs: intFrom(100, 600_000).default(10_000),
  }),
  /** Most connections (idle ones included) the device listener holds at once. */
  maxConnections: intFrom(1, 10_000_000).default(4096),
  /** Uploads one device may have in progress at the same time (429 over it). */
  maxConcurrentUploadsPerDevice: intFrom(1, 10_000).default(4),
  /** Token buckets shared by every node (PostgreSQL or Redis); 0 turns a limit off. */
  throttle: z.object({
    /** Failed binds one client address may make per window (PSK guessing). */
    bindFailuresPerAddress: intFrom(0, 1_000_000).default(20),
    /** Failed binds one certificate may make per window, from any address. */
    bindFailuresPerCertificate: intFrom(0, 1_000_000).default(5),
    bindFailureWindowSeconds: intFrom(1, 86_400).default(600),
    /** Uploads one device may make per window (burst up to this many). */
    uploadsPerDevice: intFrom(0, 1_000_000).default(600),
    uploadWindowSeconds: intFrom(1, 86_400).default(60),
  }),
  dbPoolSize: intFrom(1, 1000).default(20),
  /**
   * What DATABASE_URL points at. `off`: PostgreSQL itself. `session` or
   * `transaction`: a pooler (PgBouncer) in that pool mode, which refuses the
   * `options` startup parameter (1.18) and, in transaction mode, runs one
   * client's statements on any server connection: see connect.ts.
   */
  dbPooler: z.enum(['off', 'session', 'transaction']).default('off'),
  /**
   * A direct URL (not through a transaction-mode pooler) for the connection
   * that LISTENs for device news (control/device-event-bus.ts).
   */
  dbListenUrl: postgresUrl.optional(),
  proxy: z.object({
    /**
     * `off`: devices connect over mTLS to the app itself. `nginx`: nginx
     * terminates TLS and forwards the client certificate in `certHeader`;
     * the app then speaks plain HTTP on loopback or a Unix socket only.
     */
    mode: z.enum(['off', 'nginx']).default('off'),
    /** Peers whose certificate header is believed (TCP listener only). */
    trustedProxies: z.array(ipOrCidr).default(['127.0.0.1', '::1']),
    certHeader: z
      .string()
      .regex(/^[A-Za-z0-9-]+$/, 'must be an HTTP header name')
      .transform((name) => name.toLowerCase())
      .default('x-ssl-client-cert'),
    /** A Unix socket path to listen on instead of host:port (behind nginx only). */
    listenSocket: z.string().min(1).optional(),
  }),
});

export type Config = Readonly<z.infer<typeof schema>>;

export type Env = Readonly<Record<string, string | undefined>>;

/** Flags given on the command line win over the environment. */
export interface ConfigOverrides {
  port?: string | number;
  host?: string;
  migrate?: boolean;
  adminPort?: string | number;
  adminHost?: string;
  mqttPort?: string | number;
}

export function loadConfig(env: Env, overrides: ConfigOverrides = {}): Config {
  const behindProxy = env.FLEETGATE_PROXY_MODE === 'nginx';
  const raw = {
    port: overrides.port ?? env.FLEETGATE_PORT ?? (behindProxy ? BEHIND_PROXY_PORT : DIRECT_PORT),
    host: overrides.host ?? env.FLEETGATE_HOST ?? (behindProxy ? '127.0.0.1' : undefined),
    databaseUrl: env.DATABASE_URL || undefined,
    redisUrl: env.FLEETGATE_REDIS_URL || undefined,
    dataDir: env.FLEETGATE_DATA_DIR,
    certsDir: env.FLEETGATE_CERTS_DIR,
    tlsCert: env.FLEETGATE_TLS_CERT || undefined,
    tlsKey: env.FLEETGATE_TLS_KEY || undefined,
    tls: {
      cert2: env.FLEETGATE_TLS_CERT_2 || undefined,
      key2: env.FLEETGATE_TLS_KEY_2 || undefined,
      profile: env.FLEETGATE_TLS_PROFILE || undefined,
      ciphers: env.FLEETGATE_TLS_CIPHERS || undefined,
      sessionCacheSize: env.FLEETGATE_TLS_SESSION_CACHE_SIZE,
      sessionLifetimeSeconds: env.FLEETGATE_TLS_SESSION_LIFETIME_SECONDS,
      tickets: env.FLEETGATE_TLS_TICKETS || undefined,
      ticketKeyRotationSeconds: env.FLEETGATE_TLS_TICKET_KEY_ROTATION_SECONDS,
      ticketKeyDir: env.FLEETGATE_TLS_TICKET_KEY_DIR || undefined,
    },
    migrateOnStart: overrides.migrate,
    logLevel: env.FLEETGATE_LOG_LEVEL,
    admin: {
      host: overrides.adminHost ?? env.FLEETGATE_ADMIN_HOST,
      port: overrides.adminPort ?? env.FLEETGATE_ADMIN_PORT,
      token: env.FLEETGATE_ADMIN_TOKEN || undefined,
    },
    rotationGraceMs: env.FLEETGATE_ROTATION_GRACE_MS,
    rotationPendingTtlMs: env.FLEETGATE_ROTATION_PENDING_TTL_MS,
    registrationLifetimeMs: env.FLEETGATE_REGISTRATION_LIFETIME_MS,
    registrationPollIntervalMs: env.FLEETGATE_REGISTRATION_POLL_INTERVAL_MS,
    metricsAccess: env.FLEETGATE_METRICS_ACCESS || undefined,
    drainTimeoutMs: env.FLEETGATE_DRAIN_TIMEOUT_MS,
    limits: {
      maxUploadBytes: env.FLEETGATE_MAX_UPLOAD_BYTES,
      maxParts: env.FLEETGATE_MAX_PARTS,
      maxLineBytes: env.FLEETGATE_MAX_LINE_BYTES,
      maxJsonBytes: env.FLEETGATE_MAX_JSON_BYTES,
      maxClockSkewMs: env.FLEETGATE_MAX_CLOCK_SKEW_MS,
      minTimestampMs: env.FLEETGATE_MIN_TIMESTAMP_MS,
      maxSeriesPerDevice: env.FLEETGATE_MAX_SERIES_PER_DEVICE,
      maxMessageBytes: env.FLEETGATE_MAX_MESSAGE_BYTES,
      maxMessageFields: env.FLEETGATE_MAX_MESSAGE_FIELDS,
      maxMessages: env.FLEETGATE_MAX_MESSAGES,
    },
    websocket: {
      pingIntervalMs: env.FLEETGATE_WS_PING_INTERVAL_MS,
      maxConnectionsPerDevice: env.FLEETGATE_WS_MAX_CONNECTIONS_PER_DEVICE,
      revocationPollMs: env.FLEETGATE_WS_REVOCATION_POLL_MS,
    },
    mqtt: {
      port: overrides.mqttPort ?? (env.FLEETGATE_MQTT_PORT || undefined),
      maxPayloadBytes: env.FLEETGATE_MQTT_MAX_PAYLOAD_BYTES,
      maxInflight: env.FLEETGATE_MQTT_MAX_INFLIGHT,
      messagesPerMinute: env.FLEETGATE_MQTT_MESSAGES_PER_MINUTE,
      maxConnectionsPerDevice: env.FLEETGATE_MQTT_MAX_CONNECTIONS_PER_DEVICE,
      revocationPollMs: env.FLEETGATE_MQTT_REVOCATION_POLL_MS,
    },
    timeouts: {
      headersMs: env.FLEETGATE_HEADERS_TIMEOUT_MS,
      requestMs: env.FLEETGATE_REQUEST_TIMEOUT_MS,
      keepAliveMs: env.FLEETGATE_KEEPALIVE_TIMEOUT_MS,
      bodyIdleMs: env.FLEETGATE_BODY_IDLE_TIMEOUT_MS,
      dbAcquireMs: env.FLEETGATE_DB_ACQUIRE_TIMEOUT_MS,
      minBodyBytesPerSecond: env.FLEETGATE_MIN_BODY_BYTES_PER_SECOND,
      minBodyRateWindowMs: env.FLEETGATE_MIN_BODY_RATE_WINDOW_MS,
      firstRequestMs: env.FLEETGATE_FIRST_REQUEST_TIMEOUT_MS,
      tlsHandshakeMs: env.FLEETGATE_TLS_HANDSHAKE_TIMEOUT_MS,
    },
    maxConnections: env.FLEETGATE_MAX_CONNECTIONS,
    maxConcurrentUploadsPerDevice: env.FLEETGATE_MAX_CONCURRENT_UPLOADS_PER_DEVICE,
    throttle: {
      bindFailuresPerAddress: env.FLEETGATE_BIND_FAILURES_PER_ADDRESS,
      bindFailuresPerCertificate: env.FLEETGATE_BIND_FAILURES_PER_CERTIFICATE,
      bindFailureWindowSeconds: env.FLEETGATE_BIND_FAILURE_WINDOW_SECONDS,
      uploadsPerDevice: env.FLEETGATE_UPLOADS_PER_DEVICE,
      uploadWindowSeconds: env.FLEETGATE_UPLOAD_WINDOW_SECONDS,
    },
    dbPoolSize: env.FLEETGATE_DB_POOL_SIZE,
    dbPooler: env.FLEETGATE_DB_POOLER || undefined,
    dbListenUrl: env.FLEETGATE_DB_LISTEN_URL || undefined,
    proxy: {
      mode: env.FLEETGATE_PROXY_MODE || undefined,
      trustedProxies: commaList(env.FLEETGATE_TRUSTED_PROXIES),
      certHeader: env.FLEETGATE_CLIENT_CERT_HEADER || undefined,
      listenSocket: env.FLEETGATE_LISTEN_SOCKET || undefined,
    },
  };
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (i) => `${settingName(i.path.join('.'), overrides)}: ${i.message}`,
    );
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  if (Boolean(parsed.data.tlsCert) !== Boolean(parsed.data.tlsKey)) {
    throw new ConfigError('FLEETGATE_TLS_CERT and FLEETGATE_TLS_KEY must be set together');
  }
  if (Boolean(parsed.data.tls.cert2) !== Boolean(parsed.data.tls.key2)) {
    throw new ConfigError('FLEETGATE_TLS_CERT_2 and FLEETGATE_TLS_KEY_2 must be set together');
  }
  if (parsed.data.tls.cert2 && !parsed.data.tlsCert) {
    throw new ConfigError('FLEETGATE_TLS_CERT_2 needs FLEETGATE_TLS_CERT (the first pair)');
  }
  assertProxySettings(parsed.data);
  const { listenSocket } = parsed.data.proxy;
  const config = {
    ...parsed.data,
    dataDir: path.resolve(parsed.data.dataDir),
    certsDir: path.resolve(parsed.data.certsDir),
    tls: {
      ...parsed.data.tls,
      ticketKeyDir:
        parsed.data.tls.ticketKeyDir === undefined
          ? undefined
          : path.resolve(parsed.data.tls.ticketKeyDir),
    },
    proxy: {
      ...parsed.data.proxy,
      listenSocket: listenSocket === undefined ? undefined : path.resolve(listenSocket),
    },
  };
  return deepFreeze(config);
}

/**
 * Behind nginx the app speaks plain HTTP and believes a certificate header, so
 * it must only be reachable by the proxy: loopback or a Unix socket, never an
 * address other hosts can reach.
 */
function assertProxySettings(config: z.infer<typeof schema>): void {
  if (config.proxy.mode === 'off') {
    if (config.proxy.listenSocket) {
      throw new ConfigError('FLEETGATE_LISTEN_SOCKET needs FLEETGATE_PROXY_MODE=nginx');
    }
    return;
  }
  if (!config.proxy.listenSocket && !LOOPBACK_HOSTS.has(config.host)) {
    throw new ConfigError(
      `with FLEETGATE_PROXY_MODE=nginx the app serves plain HTTP and must listen on loopback ` +
        `(127.0.0.1, ::1) or FLEETGATE_LISTEN_SOCKET, not on ${config.host}`,
    );
  }
}

/**
 * What an operator set, by its name: the environment variable (and the flag,
 * when one exists), never the internal path. Values are not repeated, since
 * some of them (DATABASE_URL, FLEETGATE_ADMIN_TOKEN) are secrets.
 */
const SETTING_NAMES: Record<string, { env: string; flag?: keyof ConfigOverrides; cli?: string }> = {
  port: { env: 'FLEETGATE_PORT', flag: 'port', cli: '--port' },
  host: { env: 'FLEETGATE_HOST', flag: 'host', cli: '--host' },
  databaseUrl: { env: 'DATABASE_URL' },
  redisUrl: { env: 'FLEETGATE_REDIS_URL' },
  dataDir: { env: 'FLEETGATE_DATA_DIR' },
  migrateOnStart: { env: '--no-migrate', flag: 'migrate', cli: '--no-migrate' },
  certsDir: { env: 'FLEETGATE_CERTS_DIR' },
  tlsCert: { env: 'FLEETGATE_TLS_CERT' },
  tlsKey: { env: 'FLEETGATE_TLS_KEY' },
  'tls.cert2': { env: 'FLEETGATE_TLS_CERT_2' },
  'tls.key2': { env: 'FLEETGATE_TLS_KEY_2' },
  'tls.profile': { env: 'FLEETGATE_TLS_PROFILE' },
  'tls.ciphers': { env: 'FLEETGATE_TLS_CIPHERS' },
  'tls.sessionCacheSize': { env: 'FLEETGATE_TLS_SESSION_CACHE_SIZE' },
  'tls.sessionLifetimeSeconds': { env: 'FLEETGATE_TLS_SESSION_LIFETIME_SECONDS' },
  'tls.tickets': { env: 'FLEETGATE_TLS_TICKETS' },
  'tls.ticketKeyRotationSeconds': { env: 'FLEETGATE_TLS_TICKET_KEY_ROTATION_SECONDS' },
  'tls.ticketKeyDir': { env: 'FLEETGATE_TLS_TICKET_KEY_DIR' },
  logLevel: { env: 'FLEETGATE_LOG_LEVEL' },
  'admin.host': { env: 'FLEETGATE_ADMIN_HOST', flag: 'adminHost', cli: '--admin-host' },
  'admin.port': { env: 'FLEETGATE_ADMIN_PORT', flag: 'adminPort', cli: '--admin-port' },
  'admin.token': { env: 'FLEETGATE_ADMIN_TOKEN' },
  rotationGraceMs: { env: 'FLEETGATE_ROTATION_GRACE_MS' },
  rotationPendingTtlMs: { env: 'FLEETGATE_ROTATION_PENDING_TTL_MS' },
  registrationLifetimeMs: { env: 'FLEETGATE_REGISTRATION_LIFETIME_MS' },
  registrationPollIntervalMs: { env: 'FLEETGATE_REGISTRATION_POLL_INTERVAL_MS' },
  metricsAccess: { env: 'FLEETGATE_METRICS_ACCESS' },
  drainTimeoutMs: { env: 'FLEETGATE_DRAIN_TIMEOUT_MS' },
  'limits.maxUploadBytes': { env: 'FLEETGATE_MAX_UPLOAD_BYTES' },
  'limits.maxParts': { env: 'FLEETGATE_MAX_PARTS' },
  'limits.maxLineBytes': { env: 'FLEETGATE_MAX_LINE_BYTES' },
  'limits.maxJsonBytes': { env: 'FLEETGATE_MAX_JSON_BYTES' },
  'limits.maxClockSkewMs': { env: 'FLEETGATE_MAX_CLOCK_SKEW_MS' },
  'limits.minTimestampMs': { env: 'FLEETGATE_MIN_TIMESTAMP_MS' },
  'limits.maxSeriesPerDevice': { env: 'FLEETGATE_MAX_SERIES_PER_DEVICE' },
  'limits.maxMessageBytes': { env: 'FLEETGATE_MAX_MESSAGE_BYTES' },
  'limits.maxMessageFields': { env: 'FLEETGATE_MAX_MESSAGE_FIELDS' },
  'limits.maxMessages': { env: 'FLEETGATE_MAX_MESSAGES' },
  'websocket.pingIntervalMs': { env: 'FLEETGATE_WS_PING_INTERVAL_MS' },
  'websocket.maxConnectionsPerDevice': { env: 'FLEETGATE_WS_MAX_CONNECTIONS_PER_DEVICE' },
  'websocket.revocationPollMs': { env: 'FLEETGATE_WS_REVOCATION_POLL_MS' },
  'mqtt.port': { env: 'FLEETGATE_MQTT_PORT', flag: 'mqttPort', cli: '--mqtt-port' },
  'mqtt.maxPayloadBytes': { env: 'FLEETGATE_MQTT_MAX_PAYLOAD_BYTES' },
  'mqtt.maxInflight': { env: 'FLEETGATE_MQTT_MAX_INFLIGHT' },
  'mqtt.messagesPerMinute': { env: 'FLEETGATE_MQTT_MESSAGES_PER_MINUTE' },
  'mqtt.maxConnectionsPerDevice': { env: 'FLEETGATE_MQTT_MAX_CONNECTIONS_PER_DEVICE' },
  'mqtt.revocationPollMs': { env: 'FLEETGATE_MQTT_REVOCATION_POLL_MS' },
  'timeouts.headersMs': { env: 'FLEETGATE_HEADERS_TIMEOUT_MS' },
  'timeouts.requestMs': { env: 'FLEETGATE_REQUEST_TIMEOUT_MS' },
  'timeouts.keepAliveMs': { env: 'FLEETGATE_KEEPALIVE_TIMEOUT_MS' },
  'timeouts.bodyIdleMs': { env: 'FLEETGATE_BODY_IDLE_TIMEOUT_MS' },
  'timeouts.dbAcquireMs': { env: 'FLEETGATE_DB_ACQUIRE_TIMEOUT_MS' },
  'timeouts.minBodyBytesPerSecond': { env: 'FLEETGATE_MIN_BODY_BYTES_PER_SECOND' },
  'timeouts.minBodyRateWindowMs': { env: 'FLEETGATE_MIN_BODY_RATE_WINDOW_MS' },
  'timeouts.firstRequestMs': { env: 'FLEETGATE_FIRST_REQUEST_TIMEOUT_MS' },
  'timeouts.tlsHandshakeMs': { env: 'FLEETGATE_TLS_HANDSHAKE_TIMEOUT_MS' },
  maxConnections: { env: 'FLEETGATE_MAX_CONNECTIONS' },
  maxConcurrentUploadsPerDevice: { env: 'FLEETGATE_MAX_CONCURRENT_UPLOADS_PER_DEVICE' },
  'throttle.bindFailuresPerAddress': { env: 'FLEETGATE_BIND_FAILURES_PER_ADDRESS' },
  'throttle.bindFailuresPerCertificate': { env: 'FLEETGATE_BIND_FAILURES_PER_CERTIFICATE' },
  'throttle.bindFailureWindowSeconds': { env: 'FLEETGATE_BIND_FAILURE_WINDOW_SECONDS' },
  'throttle.uploadsPerDevice': { env: 'FLEETGATE_UPLOADS_PER_DEVICE' },
  'throttle.uploadWindowSeconds': { env: 'FLEETGATE_UPLOAD_WINDOW_SECONDS' },
  dbPoolSize: { env: 'FLEETGATE_DB_POOL_SIZE' },
  dbPooler: { env: 'FLEETGATE_DB_POOLER' },
  dbListenUrl: { env: 'FLEETGATE_DB_LISTEN_URL' },
  'proxy.mode': { env: 'FLEETGATE_PROXY_MODE' },
  'proxy.trustedProxies': { env: 'FLEETGATE_TRUSTED_PROXIES' },
  'proxy.certHeader': { env: 'FLEETGATE_CLIENT_CERT_HEADER' },
  'proxy.listenSocket': { env: 'FLEETGATE_LISTEN_SOCKET' },
};

/** `FLEETGATE_PORT`, or `--port` when the flag gave the value; the path for unnamed settings. */
export function settingName(configPath: string, overrides: ConfigOverrides = {}): string {
  // A list element (trustedProxies.1) is reported under the list's variable.
  const known =
    SETTING_NAMES[configPath] ?? SETTING_NAMES[configPath.replace(/\.\d+$/, '')] ?? undefined;
  if (!known) return configPath;
  if (known.flag && overrides[known.flag] !== undefined) return known.cli!;
  return known.env;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function deepFreeze<T extends object>(value: T): T {
  for (const inner of Object.values(value)) {
    if (inner && typeof inner === 'object') deepFreeze(inner as object);
  }
  return Object.freeze(value);
}
