import { startFleetgate, type FleetgateProcess } from './fleetgate-process.js';
import {
  skipUnlessNginx,
  startBehindNginx,
  type NginxFront,
  type ProxiedFleetgate,
} from './nginx-front.js';
import { createTestDatabase, type TestDatabase } from './test-database.js';

/** What the tests of one `describe` behind nginx talk to. */
export interface FleetgateBehindNginx {
  /** The suite's own migrated test database (its workDir holds nginx's prefix too). */
  readonly db: TestDatabase;
  /** fleetgate in proxy mode on a Unix socket. */
  readonly app: FleetgateProcess;
  /** The real nginx in front of it: what devices connect to. */
  readonly nginx: NginxFront;
}

/**
 * The hooks of a `describe` whose tests reach fleetgate through a real nginx:
 * `before` skips the suite (saying why) where nginx is not installed, creates a
 * migrated test database and starts fleetgate in proxy mode (with `env`)
 * behind nginx; `after` stops both and drops the database. Call it first in
 * the describe, so that the suite's own hooks find everything started.
 */
export function useFleetgateBehindNginx(env: Record<string, string> = {}): FleetgateBehindNginx {
  let db: TestDatabase | undefined;
  let front: ProxiedFleetgate | undefined;
  before(async function () {
    skipUnlessNginx(this);
    const created = await createTestDatabase({ migrated: true });
    db = created;
    front = await startBehindNginx(
      (appEnv) => startFleetgate(created, appEnv),
      created.workDir,
      env,
    );
  });
  after(async () => {
    await front?.stop();
    await db?.drop();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('useFleetgateBehindNginx: started in a before hook');
    return value;
  };
  return {
    get db() {
      return started(db);
    },
    get app() {
      return started(front).app;
    },
    get nginx() {
      return started(front).nginx;
    },
  };
}
