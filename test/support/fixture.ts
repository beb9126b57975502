import { createTestDatabase, type TestDatabase } from './test-database.js';
import { startFleetgate, type FleetgateProcess } from './fleetgate-process.js';
import { DeviceClient, newDevice, type TestDevice } from './device-client.js';

/** One fresh database and one running server for a test file (mocha before/after). */
export interface Fixture {
  db: TestDatabase;
  server: FleetgateProcess;
  clients: DeviceClient[];
  /** A client for a device; closed with the fixture. */
  client(device: TestDevice | null): DeviceClient;
  /** Creates an identity and returns a fresh PSK for it. */
  identityWithPsk(name: string, pskArgs?: string[]): Promise<string>;
  /** A new device bound to a new identity, with its client. */
  boundDevice(identity: string): Promise<{ device: TestDevice; client: DeviceClient }>;
  close(): Promise<void>;
}

export function useFixture(env: Record<string, string> = {}): () => Fixture {
  let fixture: Fixture | undefined;
  before(async function () {
    this.timeout(120_000);
    const db = await createTestDatabase({ migrated: true });
    const server = await startFleetgate(db, env);
    const clients: DeviceClient[] = [];
    const cli = async (args: string[]) => {
      const result = await server.cli(args);
      if (result.code !== 0)
        throw new Error(`fleetgate ${args.join(' ')} failed: ${result.stderr}`);
      return result.stdout;
    };
    const self: Fixture = {
      db,
      server,
      clients,
      client(device) {
        const client = new DeviceClient(server, device);
        clients.push(client);
        return client;
      },
      async identityWithPsk(name, pskArgs = []) {
        await cli(['identity', 'create', name]);
        return (await cli(['psk', 'issue', name, ...pskArgs])).trim();
      },
      async boundDevice(identity) {
        const psk = await self.identityWithPsk(identity);
        const device = newDevice();
        const client = self.client(device);
        const answer = await client.bind(psk);
        if (answer.status !== 200) throw new Error(`bind failed: ${answer.text}`);
        return { device, client };
      },
      async close() {
        await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
        await server.stop();
        await db.drop();
      },
    };
    fixture = self;
  });
  after(async function () {
    this.timeout(60_000);
    await fixture?.close();
  });
  return () => {
    if (!fixture) throw new Error('fixture not started');
    return fixture;
  };
}

let counter = 0;
/** Identity names unique within a test run. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}
