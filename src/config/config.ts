import path from 'node:path';
import { z } from 'zod';

/**
 * All configuration is read here, once, from the environment plus CLI flags,
 * validated, and frozen. Nothing else in the code reads process.env.
 */
const intFrom = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const schema = z.object({
  port: intFrom(0, 65535).default(8443),
  host: z.string().min(1).default('0.0.0.0'),
  databaseUrl: z.string().url().optional(),
  dataDir: z.string().min(1).default('./data'),
  certsDir: z.string().min(1).default('./certs'),
  tlsCert: z.string().optional(),
  tlsKey: z.string().optional(),
  migrateOnStart: z.boolean().default(true),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
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
  }),
  timeouts: z.object({
    /** Time allowed to receive the request headers. */
    headersMs: intFrom(1000, 3_600_000).default(20_000),
    /** Whole request (headers and body); large uploads on slow links need minutes. */
    requestMs: intFrom(1000, 24 * 3_600_000).default(15 * 60_000),
    keepAliveMs: intFrom(1000, 3_600_000).default(65_000),
  }),
  /** Per-process token buckets; 0 turns a limit off. */
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
});

export type Config = Readonly<z.infer<typeof schema>>;

export type Env = Readonly<Record<string, string | undefined>>;

/** Flags given on the command line win over the environment. */
export interface ConfigOverrides {
  port?: string | number;
  host?: string;
  migrate?: boolean;
}

export function loadConfig(env: Env, overrides: ConfigOverrides = {}): Config {
  const raw = {
    port: overrides.port ?? env.FLEETGATE_PORT,
    host: overrides.host ?? env.FLEETGATE_HOST,
    databaseUrl: env.DATABASE_URL || undefined,
    dataDir: env.FLEETGATE_DATA_DIR,
    certsDir: env.FLEETGATE_CERTS_DIR,
    tlsCert: env.FLEETGATE_TLS_CERT || undefined,
    tlsKey: env.FLEETGATE_TLS_KEY || undefined,
    migrateOnStart: overrides.migrate,
    logLevel: env.FLEETGATE_LOG_LEVEL,
    limits: {
      maxUploadBytes: env.FLEETGATE_MAX_UPLOAD_BYTES,
      maxParts: env.FLEETGATE_MAX_PARTS,
      maxLineBytes: env.FLEETGATE_MAX_LINE_BYTES,
      maxJsonBytes: env.FLEETGATE_MAX_JSON_BYTES,
      maxClockSkewMs: env.FLEETGATE_MAX_CLOCK_SKEW_MS,
    },
    timeouts: {
      headersMs: env.FLEETGATE_HEADERS_TIMEOUT_MS,
      requestMs: env.FLEETGATE_REQUEST_TIMEOUT_MS,
      keepAliveMs: env.FLEETGATE_KEEPALIVE_TIMEOUT_MS,
    },
    throttle: {
      bindFailuresPerAddress: env.FLEETGATE_BIND_FAILURES_PER_ADDRESS,
      bindFailuresPerCertificate: env.FLEETGATE_BIND_FAILURES_PER_CERTIFICATE,
      bindFailureWindowSeconds: env.FLEETGATE_BIND_FAILURE_WINDOW_SECONDS,
      uploadsPerDevice: env.FLEETGATE_UPLOADS_PER_DEVICE,
      uploadWindowSeconds: env.FLEETGATE_UPLOAD_WINDOW_SECONDS,
    },
    dbPoolSize: env.FLEETGATE_DB_POOL_SIZE,
  };
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  if (Boolean(parsed.data.tlsCert) !== Boolean(parsed.data.tlsKey)) {
    throw new ConfigError('FLEETGATE_TLS_CERT and FLEETGATE_TLS_KEY must be set together');
  }
  const config = {
    ...parsed.data,
    dataDir: path.resolve(parsed.data.dataDir),
    certsDir: path.resolve(parsed.data.certsDir),
  };
  return deepFreeze(config);
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
