import WebSocket from 'ws';
import type { TestDevice } from './device-client.js';
import type { Fixture } from './fixture.js';

/** Where a device's WebSocket goes: fleetgate itself or nginx in front of it. */
export interface SocketEndpoint {
  /** `https://localhost:PORT`, without a path. */
  baseUrl: string;
  /** The CA of the server certificate the device sees. */
  caPem: string;
}

/** An open WebSocket and how it closed, once it has. */
export interface WatchedSocket {
  socket: WebSocket;
  closed: Promise<{ code: number; reason: string }>;
}

/** A device's WebSocket to `endpoint` (`/device_endpoint/ws`), open, and its close watched. */
export async function openWatchedSocket(
  endpoint: SocketEndpoint,
  device: Pick<TestDevice, 'certPem' | 'keyPem'>,
): Promise<WatchedSocket> {
  const socket = new WebSocket(`${endpoint.baseUrl.replace(/^https/, 'wss')}/device_endpoint/ws`, {
    ca: endpoint.caPem,
    cert: device.certPem,
    key: device.keyPem,
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    socket.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  return { socket, closed };
}

/** A device's WebSocket to the fixture's server (`/device_endpoint/ws`), open. */
export async function openSocket(fx: Fixture, device: TestDevice): Promise<WebSocket> {
  return (await openWatchedSocket(fx.server, device)).socket;
}
