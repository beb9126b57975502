/** Who did something and from where; every audited service call takes one. */
export interface Actor {
  /** `device`, `admin-api`, `cli`, or `server` (first-start token generation). */
  kind: 'device' | 'admin-api' | 'cli' | 'server';
  remoteAddress: string | null;
}

export const CLI_ACTOR: Actor = Object.freeze({ kind: 'cli', remoteAddress: null });
