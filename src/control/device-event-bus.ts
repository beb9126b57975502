import pg from 'pg';
import type { Logger } from 'pino';
import { deviceEvents } from '../devices/device-events.js';

/** The channel the devices trigger notifies (migration 2026-12-01T0300). */
export const DEVICE_EVENTS_CHANNEL = 'fleetgate_device_events';

interface DeviceEventMessage {
  event: string;
  deviceId: number;
}

/**
 * Carries device state changes between the nodes on one PostgreSQL: a
 * trigger NOTIFYs on every revocation, whichever node (or CLI) made it, and
 * each node LISTENs on its own connection and re-emits the news on its
 * in-process `deviceEvents`, so that the WebSocket sessions it holds for the
 * device are closed at once. Requests need no news: each one reads the
 * device's state afresh. A lost connection is reopened; the WebSocket
 * channel's poll covers what was missed meanwhile.
 */
export function startDeviceEventBus(databaseUrl: string, log: Logger): { close(): Promise<void> } {
  let client: pg.Client | undefined;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;

  const connect = async () => {
    const next = new pg.Client({ connectionString: databaseUrl });
    next.on('notification', (message) => {
      const parsed = parse(message.payload);
      if (parsed?.event === 'revoked') deviceEvents.emit('revoked', parsed.deviceId);
    });
    next.on('error', (err) => {
      log.warn({ err: err.message }, 'device event bus: connection lost, reconnecting');
      void next.end().catch(() => undefined);
      scheduleReconnect();
    });
    try {
      await next.connect();
      await next.query(`listen ${DEVICE_EVENTS_CHANNEL}`);
      if (closed) return void (await next.end());
      client = next;
    } catch (err) {
      log.warn({ err: String(err) }, 'device event bus: could not listen, retrying');
      void next.end().catch(() => undefined);
      scheduleReconnect();
    }
  };
  const scheduleReconnect = () => {
    if (closed || retry) return;
    retry = setTimeout(() => {
      retry = undefined;
      void connect();
    }, 1000);
    retry.unref();
  };

  void connect();
  return {
    close: async () => {
      closed = true;
      if (retry) clearTimeout(retry);
      await client?.end().catch(() => undefined);
    },
  };
}

function parse(payload: string | undefined): DeviceEventMessage | undefined {
  try {
    const value = JSON.parse(payload ?? '') as Partial<DeviceEventMessage>;
    return typeof value.event === 'string' && Number.isSafeInteger(value.deviceId)
      ? (value as DeviceEventMessage)
      : undefined;
  } catch {
    return undefined;
  }
}
