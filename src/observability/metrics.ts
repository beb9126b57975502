import type { Server as HttpServer, IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import typeIs from 'type-is';
import type pg from 'pg';
import client from 'prom-client';
import { pathOf, type PlainMiddleware } from '../http/plain-middleware.js';

/**
 * Prometheus metrics of one fleetgate process (prom-client), scraped at
 * `GET /metrics` on the admin listener. Every metric is listed in the README
 * ("Operating fleetgate"). Labels take values from small fixed sets only
 * (route templates, status codes, JSON error codes), never raw paths or ids.
 */
export const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry });

/** Uploads may stream for minutes: buckets go well past the defaults' 10 s. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

const requestDuration = new client.Histogram({
  name: 'http_server_request_duration_seconds',
  help: 'Duration of HTTP requests, by method, route template and status code',
  labelNames: ['method', 'route', 'status_code'] as const,
  buckets: DURATION_BUCKETS,
  registers: [registry],
});

const pointsStored = new client.Counter({
  name: 'fleetgate_points_stored_total',
  help: 'Points stored by uploads answered 200',
  registers: [registry],
});

const pointsDuplicate = new client.Counter({
  name: 'fleetgate_points_duplicate_total',
  help: 'Points of uploads answered 200 that were already stored (retries, repeated timestamps)',
  registers: [registry],
});

const uploads = new client.Counter({
  name: 'fleetgate_uploads_total',
  help: 'Uploads by outcome: stored, or the JSON error code of the refusal',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

const binds = new client.Counter({
  name: 'fleetgate_binds_total',
  help: 'Bind requests by outcome: bound, already_bound, or the JSON error code of the refusal',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

const tlsHandshakes = new client.Counter({
  name: 'fleetgate_tls_handshakes_total',
  help: 'Completed TLS handshakes on the device listener, full or resumed (session reuse)',
  labelNames: ['kind'] as const,
  registers: [registry],
});

/** Counters of open MQTT connections (one per running broker); summed by the gauge. */
const mqttConnectionCounters = new Set<() => number>();
const openConnections = new client.Gauge({
  name: 'fleetgate_open_connections',
  help: 'Open long-lived device connections by channel (websocket, mqtt)',
  labelNames: ['channel'] as const,
  registers: [registry],
  collect() {
    let open = 0;
    for (const count of mqttConnectionCounters) open += count();
    this.set({ channel: 'mqtt' }, open);
  },
});
for (const channel of ['websocket', 'mqtt']) openConnections.set({ channel }, 0);

/** A device connection of a long-lived channel opened; call the returned function once when it closes. */
export function countOpenConnection(channel: 'websocket' | 'mqtt'): () => void {
  openConnections.inc({ channel });
  let open = true;
  return () => {
    if (!open) return;
    open = false;
    openConnections.dec({ channel });
  };
}

/** Pools reported by the gauge below; a Set so tests and restarts in one process add up cleanly. */
const pools = new Set<pg.Pool>();
new client.Gauge({
  name: 'fleetgate_db_pool_connections',
  help: 'PostgreSQL pool connections: in_use (checked out), idle, waiting (requests queued for one)',
  labelNames: ['state'] as const,
  registers: [registry],
  collect() {
    let inUse = 0;
    let idle = 0;
    let waiting = 0;
    for (const pool of pools) {
      inUse += pool.totalCount - pool.idleCount;
      idle += pool.idleCount;
      waiting += pool.waitingCount;
    }
    this.set({ state: 'in_use' }, inUse);
    this.set({ state: 'idle' }, idle);
    this.set({ state: 'waiting' }, waiting);
  },
});

const mqttPublishes = new client.Counter({
  name: 'fleetgate_mqtt_publishes_total',
  help: 'MQTT PUBLISH packets of devices by outcome: ok, or the error code of the refusal',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

const logLinesDropped = new client.Counter({
  name: 'fleetgate_log_lines_dropped_total',
  help: 'Server log lines dropped because the log buffer was full (stdout not read fast enough)',
  registers: [registry],
});

/** One server log line dropped by the asynchronous log destination (src/server/logger.ts). */
export function countDroppedLogLine(): void {
  logLinesDropped.inc();
}

/** Reports the open connections of one MQTT broker; returns the unwatch. */
export function watchMqttConnections(count: () => number): () => void {
  mqttConnectionCounters.add(count);
  return () => mqttConnectionCounters.delete(count);
}

export function countMqttPublish(outcome: string): void {
  mqttPublishes.inc({ outcome });
}

/** The PostgreSQL pool to report (the embedded database has no pool); returns the unwatch. */
export function watchDbPool(pool: pg.Pool): () => void {
  pools.add(pool);
  return () => pools.delete(pool);
}

/** Counts full and resumed handshakes of a TLS server. */
export function watchTlsHandshakes(server: HttpServer): void {
  server.on('secureConnection', (socket: TLSSocket) => {
    tlsHandshakes.inc({ kind: socket.isSessionReused() ? 'resumed' : 'full' });
  });
}

/** The points of one upload answered 200. */
export function countUploadedPoints(summary: { stored: number; duplicates: number }): void {
  pointsStored.inc(summary.stored);
  pointsDuplicate.inc(summary.duplicates);
}

/** The outcome of a bind answered 200 (`bound`, `already_bound`). */
export function countBind(outcome: string): void {
  binds.inc({ outcome });
}

/**
 * The request's route template (`/v1/devices/:fingerprint`), never its path:
 * a label per raw path would grow without bound. Unmatched requests share one.
 */
export function routeTemplate(
  req: IncomingMessage & { route?: { path?: unknown }; baseUrl?: string },
): string {
  const route = req.route;
  if (!route || typeof route.path !== 'string') return 'unmatched';
  return `${req.baseUrl ?? ''}${route.path}`;
}

/**
 * Times every request of an app. On the device app it also counts uploads
 * and binds by outcome: a refusal by its JSON error code (set by the error
 * handler in `res.locals.errorCode`), a success as the handler named it.
 */
export function httpMetrics(options: { deviceEndpoint?: string } = {}): PlainMiddleware {
  return (req, res, next) => {
    const end = requestDuration.startTimer();
    const kind =
      options.deviceEndpoint && req.method === 'POST' && pathOf(req) === options.deviceEndpoint
        ? typeIs(req, ['multipart/form-data'])
          ? 'upload'
          : typeIs(req, ['application/json'])
            ? 'bind'
            : null
        : null;
    let counted = false;
    const done = (answered: boolean) => {
      if (counted) return;
      counted = true;
      // 499: the client closed the connection before the answer (nginx's convention).
      const status = answered ? String(res.statusCode) : '499';
      end({ method: req.method, route: routeTemplate(req), status_code: status });
      if (!kind) return;
      const failed = res.locals.errorCode as string | undefined;
      const ok = answered && res.statusCode === 200 && !failed;
      if (kind === 'upload') uploads.inc({ outcome: ok ? 'stored' : (failed ?? 'aborted') });
      // A successful bind is counted by the handler (bound / already_bound).
      else if (!ok) binds.inc({ outcome: failed ?? 'aborted' });
    };
    res.on('finish', () => done(true));
    res.on('close', () => done(res.writableFinished));
    next();
  };
}

/** The text format Prometheus scrapes. */
export async function renderMetrics(): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}
