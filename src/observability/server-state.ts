/**
 * What the health endpoints report about this process beyond the database:
 * whether it is draining (SIGTERM received: finishing requests in flight,
 * accepting no new ones).
 */
export interface ServerState {
  draining: boolean;
}

export function createServerState(): ServerState {
  return { draining: false };
}
