import pg from 'pg';
import type { Logger } from 'pino';
import {
  DEVICE_EVENTS_CHANNEL,
  emitDeviceEvent,
  parseDeviceEvent,
} from '../devices/device-events.js';

/**
 * Carries device state changes between the nodes on one PostgreSQL (or one
 * Citus coordinator): whichever node (or CLI) revokes a device, disables an
 * identity or retires a certificate NOTIFYs in the same transaction
 * (devices/device-events.repository.ts), and each node LISTENs on its own
 * connection and re-emits the news on its in-process `deviceEvents`, so that
 * the WebSocket and MQTT sessions it holds are closed at once. Requests need
 * no news: each one reads the device's state afresh. A lost connection is
 * reopened; the channels' poll covers what was missed meanwhile.
 */
export function startDeviceEventBus(databaseUrl: string, log: Logger): { close(): Promise<void> } {
  let client: pg.Client | undefined;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;

  const connect = async () => {
    const next = new pg.Client({ connectionString: databaseUrl });
    next.on('notification', (message) => {
      const news = parseDeviceEvent(message.payload);
      if (news) emitDeviceEvent(news);
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
