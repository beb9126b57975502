import { Agent, request } from 'undici';
import { waitFor } from './concurrency.js';
import { DeviceClient } from './device-client.js';
import type { FleetgateProcess } from './fleetgate-process.js';

/**
 * Resolves once everything the server logged so far is in its output. The
 * server writes log lines in the background, in order: a request sent now
 * (a status request without a certificate, answered 401) is logged after
 * every earlier line, so once its request id is in the output, so are they.
 * For tests that check what was logged about an event, and above all what
 * was not: read right after the event, a line still on its way would be
 * missed (a test that read it at once failed on a loaded CI machine), and a
 * check that something is absent would pass whatever the server logs.
 *
 * A server behind nginx on a Unix socket (FLEETGATE_LISTEN_SOCKET) is asked
 * on that socket, in plain HTTP, as nginx would (without the certificate header).
 */
export async function serverLogCaughtUp(
  server: Pick<FleetgateProcess, 'baseUrl' | 'caPem' | 'output' | 'socketPath'>,
): Promise<void> {
  const id = server.socketPath
    ? await requestIdOverSocket(server.socketPath)
    : await requestIdAtBaseUrl(server);
  if (!/^[0-9a-f-]{36}$/.test(id))
    throw new Error(`the server answered without a request id (${id})`);
  await waitFor(`the server's log line of request ${id}`, () => server.output().includes(id));
}

async function requestIdAtBaseUrl(server: Pick<FleetgateProcess, 'baseUrl' | 'caPem'>) {
  const client = new DeviceClient(server, null);
  try {
    return String((await client.send('GET')).headers['x-request-id']);
  } finally {
    await client.close();
  }
}

async function requestIdOverSocket(socketPath: string) {
  const agent = new Agent({ connect: { socketPath } });
  try {
    const res = await request('http://localhost/device_endpoint', { dispatcher: agent });
    await res.body.text();
    return String(res.headers['x-request-id']);
  } finally {
    await agent.close();
  }
}
