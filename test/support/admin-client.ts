import { Agent, request } from 'undici';
import { DeviceClient, readAnswer, type Answer, type TestDevice } from './device-client.js';
import { startFleetgate, type FleetgateProcess } from './fleetgate-process.js';
import { createTestDatabase, type TestDatabase } from './test-database.js';

/** A client of the admin API, as an operator's script would be. */
export class AdminClient {
  readonly agent: Agent;

  constructor(
    private readonly server: FleetgateProcess,
    private readonly token: string | null = server.adminToken,
    tlsClient: { cert: string; key: string } | null = null,
  ) {
    this.agent = new Agent({
      connect: { ca: server.caPem, servername: 'localhost', ...(tlsClient ?? {}) },
    });
  }

  async send(
    method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE',
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Answer> {
    const res = await request(`${this.server.adminUrl}${path}`, {
      method,
      dispatcher: this.agent,
      headers: {
        ...(this.token === null ? {} : { authorization: `Bearer ${this.token}` }),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    return readAnswer(res);
  }

  get(path: string, headers?: Record<string, string>) {
    return this.send('GET', path, undefined, headers);
  }

  post(path: string, body?: unknown) {
    return this.send('POST', path, body);
  }

  patch(path: string, body?: unknown) {
    return this.send('PATCH', path, body);
  }

  /** Creates an identity (optionally limited) and returns a fresh PSK for it. */
  async identityWithPsk(name: string, maxDevices?: number): Promise<string> {
    const created = await this.post('/v1/identities', {
      name,
      ...(maxDevices ? { maxDevices } : {}),
    });
    if (created.status !== 201) throw new Error(`create identity: ${created.text}`);
    return this.issuePsk(name);
  }

  async issuePsk(identity: string, options: Record<string, unknown> = {}): Promise<string> {
    const issued = await this.post(`/v1/identities/${identity}/psks`, options);
    if (issued.status !== 201) throw new Error(`issue PSK: ${issued.text}`);
    return issued.json.secret as string;
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

/** A device client that has bound its certificate with the given PSK. */
export async function boundDevice(
  server: FleetgateProcess,
  device: TestDevice,
  psk: string,
): Promise<DeviceClient> {
  const client = new DeviceClient(server, device);
  const bound = await client.bind(psk);
  if (bound.status !== 200) throw new Error(`bind: ${bound.status} ${bound.text}`);
  return client;
}

export interface FleetgateFixture {
  db: TestDatabase;
  server: FleetgateProcess;
  admin: AdminClient;
}

/**
 * Registers mocha hooks that give the enclosing suite its own database, a
 * running fleetgate and an admin client, and tear all three down afterwards.
 */
export function useFleetgate(
  env: Record<string, string> = {},
  createDatabase: () => Promise<TestDatabase> = () => createTestDatabase({ migrated: true }),
): FleetgateFixture {
  const fixture = {} as FleetgateFixture;
  before(async () => {
    fixture.db = await createDatabase();
    fixture.server = await startFleetgate(fixture.db, env);
    fixture.admin = new AdminClient(fixture.server);
  });
  after(async () => {
    await fixture.admin?.close();
    await fixture.server?.stop();
    await fixture.db?.drop();
  });
  return fixture;
}
