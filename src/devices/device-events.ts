import { EventEmitter } from 'node:events';

/**
 * News about devices, for long-lived channels (WebSocket, MQTT) that must
 * drop a device or a certificate at once; requests need none (each one reads
 * the device's state afresh).
 *
 * Whoever changes a device's standing sends the news twice: on the database
 * channel `fleetgate_device_events` inside the very transaction that makes the
 * change (device-events.repository.ts: PostgreSQL delivers it at commit, and
 * never if the change rolls back), which the other nodes hear through their
 * device event bus (control/device-event-bus.ts); and after the commit on the
 * in-process `deviceEvents`, for this process (the embedded database has no
 * other). The channels' poll covers what a node missed (its bus reconnecting).
 */
export const DEVICE_EVENTS_CHANNEL = 'fleetgate_device_events';

export type DeviceEvent =
  /** The device is revoked: every session of it goes. */
  | { event: 'revoked'; deviceId: number }
  /** The devices' identity is disabled: every session of them goes. */
  | { event: 'identity_disabled'; deviceIds: number[] }
  /**
   * These certificates are no longer accepted (retired by a rotation or a
   * replacement, or revoked by their CA's CRL): the sessions they hold go.
   */
  | { event: 'certificates_refused'; fingerprints: string[] };

export const deviceEvents = new EventEmitter<{
  revoked: [deviceId: number];
  certificatesRefused: [fingerprints: readonly string[]];
}>();
deviceEvents.setMaxListeners(0);

/** Tells this process's channels (the in-process half of the news). */
export function emitDeviceEvent(news: DeviceEvent): void {
  switch (news.event) {
    case 'revoked':
      deviceEvents.emit('revoked', news.deviceId);
      break;
    case 'identity_disabled':
      for (const deviceId of news.deviceIds) deviceEvents.emit('revoked', deviceId);
      break;
    case 'certificates_refused':
      if (news.fingerprints.length > 0) deviceEvents.emit('certificatesRefused', news.fingerprints);
      break;
  }
}

/** Below PostgreSQL's 8000-byte limit of a NOTIFY payload. */
const PAYLOAD_MAX = 7000;

/**
 * The NOTIFY payloads of one piece of news: JSON, a long list split over
 * several payloads. Empty when there is nothing to tell.
 */
export function deviceEventPayloads(news: DeviceEvent): string[] {
  if (news.event === 'revoked') return [JSON.stringify(news)];
  const [key, items] =
    news.event === 'identity_disabled'
      ? (['deviceIds', news.deviceIds] as const)
      : (['fingerprints', news.fingerprints] as const);
  const payloads: string[] = [];
  let chunk: Array<number | string> = [];
  let size = 0;
  const flush = () => {
    if (chunk.length > 0) payloads.push(JSON.stringify({ event: news.event, [key]: chunk }));
    chunk = [];
    size = 0;
  };
  for (const item of items) {
    const length = JSON.stringify(item).length + 1;
    if (size + length > PAYLOAD_MAX) flush();
    chunk.push(item);
    size += length;
  }
  flush();
  return payloads;
}

/** A payload heard on the channel, or undefined when it is not news we know. */
export function parseDeviceEvent(payload: string | undefined): DeviceEvent | undefined {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(payload ?? '') as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const listOf = (list: unknown, ok: (item: unknown) => boolean) =>
    Array.isArray(list) && list.every(ok);
  if (value.event === 'revoked' && Number.isSafeInteger(value.deviceId)) {
    return { event: 'revoked', deviceId: value.deviceId as number };
  }
  if (value.event === 'identity_disabled' && listOf(value.deviceIds, Number.isSafeInteger)) {
    return { event: 'identity_disabled', deviceIds: value.deviceIds as number[] };
  }
  if (
    value.event === 'certificates_refused' &&
    listOf(value.fingerprints, (f) => typeof f === 'string')
  ) {
    return { event: 'certificates_refused', fingerprints: value.fingerprints as string[] };
  }
  return undefined;
}
