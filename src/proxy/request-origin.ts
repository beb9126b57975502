import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import type { PlainMiddleware } from '../http/plain-middleware.js';
import type { Config } from '../config/config.js';

/**
 * Who is on the other end of a request's connection, decided once per request
 * from the configuration and the TCP peer, never from anything the client sent:
 * - `direct`: devices talk TLS to the app itself (proxy mode off);
 * - `trusted-proxy`: nginx, whose certificate and address headers are believed;
 * - `untrusted-peer`: proxy mode is on but the peer is not a configured proxy,
 *   so its headers are ignored and it has no certificate at all.
 */
export type RequestOrigin =
  | { kind: 'direct' }
  | { kind: 'trusted-proxy'; certHeader: string; clientAddress: string | null }
  | { kind: 'untrusted-peer' };

const DIRECT: RequestOrigin = { kind: 'direct' };
const UNTRUSTED: RequestOrigin = { kind: 'untrusted-peer' };
const origins = new WeakMap<IncomingMessage, RequestOrigin>();

/** Requests that never passed the middleware (unit tests, other listeners) count as direct. */
export function originOf(req: IncomingMessage): RequestOrigin {
  return origins.get(req) ?? DIRECT;
}

/** The device's own address: nginx's view of it behind a trusted proxy, else the TCP peer. */
export function clientAddressOf(req: IncomingMessage): string | null {
  const origin = originOf(req);
  if (origin.kind === 'trusted-proxy') return origin.clientAddress;
  return req.socket.remoteAddress ?? null;
}

export function requestOrigin(proxy: Config['proxy']): PlainMiddleware {
  const assign = originAssigner(proxy);
  return (req, _res, next) => {
    assign(req);
    next();
  };
}

/**
 * Decides and records the origin of a request that does not go through
 * express (a WebSocket upgrade), by the same rules as the middleware.
 */
export function originAssigner(proxy: Config['proxy']): (req: IncomingMessage) => void {
  const decide = originDecider(proxy);
  return (req) => {
    origins.set(req, decide(req));
  };
}

function originDecider(proxy: Config['proxy']): (req: IncomingMessage) => RequestOrigin {
  if (proxy.mode === 'off') return () => DIRECT;
  const trusted = new BlockList();
  for (const entry of proxy.trustedProxies) {
    const [address, bits] = entry.split('/') as [string, string | undefined];
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) trusted.addAddress(address, family);
    else trusted.addSubnet(address, Number(bits), family);
  }
  const fromProxy = (req: IncomingMessage): RequestOrigin => ({
    kind: 'trusted-proxy',
    certHeader: proxy.certHeader,
    clientAddress: realIpOf(req),
  });
  // The Unix socket is the only listener then; who may connect is decided by
  // the socket file's permissions, not by an address.
  if (proxy.listenSocket) return fromProxy;
  return (req) => (isTrustedPeer(trusted, req.socket.remoteAddress) ? fromProxy(req) : UNTRUSTED);
}

function isTrustedPeer(trusted: BlockList, address: string | undefined): boolean {
  // A socket that is already gone has no address: never trusted.
  if (!address) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return trusted.check(mapped[1]!, 'ipv4');
  return trusted.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}

/** nginx sends `X-Real-IP: $remote_addr`; anything else there is not an address. */
function realIpOf(req: IncomingMessage): string | null {
  const values = req.headersDistinct['x-real-ip'];
  if (values?.length === 1 && isIP(values[0]!)) return values[0]!;
  return req.socket.remoteAddress ?? null;
}
