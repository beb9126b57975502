import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Request } from 'express';

/** A signed-in dashboard browser. */
export interface DashboardSession {
  /** Sent back by the page in X-CSRF-Token on every state change. */
  csrf: string;
  /** The admin token hash at sign-in: a token reset ends the session. */
  tokenHash: Buffer;
  expiresAt: number;
}

export const SESSION_COOKIE = 'fleetgate_session';
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;

/**
 * Dashboard sessions, in memory: the cookie carries a random id, the map
 * keeps only its SHA-256. A restart signs every browser out.
 */
export class SessionStore {
  private readonly sessions = new Map<string, DashboardSession>();

  constructor(private readonly ttlMs = SESSION_TTL_MS) {}

  create(tokenHash: Buffer): { id: string; session: DashboardSession } {
    this.sweep();
    const id = randomBytes(32).toString('base64url');
    const session = {
      csrf: randomBytes(24).toString('base64url'),
      tokenHash,
      expiresAt: Date.now() + this.ttlMs,
    };
    this.sessions.set(digest(id), session);
    return { id, session };
  }

  /** The live session of this request's cookie, if any. */
  fromRequest(req: Request): DashboardSession | undefined {
    const id = readCookie(req.headers.cookie, SESSION_COOKIE);
    if (!id) return undefined;
    const key = digest(id);
    const session = this.sessions.get(key);
    if (!session) return undefined;
    if (session.expiresAt <= Date.now()) {
      this.sessions.delete(key);
      return undefined;
    }
    return session;
  }

  end(req: Request): void {
    const id = readCookie(req.headers.cookie, SESSION_COOKIE);
    if (id) this.sessions.delete(digest(id));
  }

  private sweep(): void {
    const now = Date.now();
    for (const [key, session] of this.sessions)
      if (session.expiresAt <= now) this.sessions.delete(key);
  }
}

export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function digest(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The cookie header for a new session (Secure when the admin listener speaks TLS). */
export function sessionCookie(id: string, secure: boolean, maxAgeMs = SESSION_TTL_MS): string {
  return [
    `${SESSION_COOKIE}=${id}`,
    'Path=/',
    'HttpOnly',
    'SameSite=Strict',
    `Max-Age=${Math.floor(maxAgeMs / 1000)}`,
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}

export function clearedSessionCookie(secure: boolean): string {
  return sessionCookie('', secure, 0);
}

/**
 * A state change from a browser must come from the dashboard's own origin:
 * an Origin header naming another host is refused. (SameSite=Strict already
 * keeps the cookie off cross-site requests; the CSRF token is the third lock.)
 */
export function foreignOrigin(req: Request): boolean {
  const origin = req.headers.origin;
  if (!origin) return false;
  try {
    return new URL(origin).host !== req.headers.host;
  } catch {
    return true;
  }
}
