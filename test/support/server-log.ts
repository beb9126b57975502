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
 * missed (a test that read it at once failed on a loaded CI machine).
 */
export async function serverLogCaughtUp(
  server: Pick<FleetgateProcess, 'baseUrl' | 'caPem' | 'output'>,
): Promise<void> {
  const client = new DeviceClient(server, null);
  try {
    const answer = await client.send('GET');
    const id = String(answer.headers['x-request-id']);
    await waitFor(`the server's log line of request ${id}`, () => server.output().includes(id));
  } finally {
    await client.close();
  }
}
