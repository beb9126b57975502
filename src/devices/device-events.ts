import { EventEmitter } from 'node:events';

/**
 * In-process news about devices, for long-lived channels (WebSocket) that
 * must drop a device at once. Other processes (a CLI on PostgreSQL) are seen
 * by polling instead: see websocket/revocation-watch.ts.
 */
export const deviceEvents = new EventEmitter<{ revoked: [deviceId: number] }>();
deviceEvents.setMaxListeners(0);
