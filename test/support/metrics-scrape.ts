import { request } from 'undici';
import type { FleetgateProcess } from './fleetgate-process.js';

/** The value of one sample in Prometheus text (0 when the series is absent). */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(match[3]);
  }
  return 0;
}

/** `GET /metrics` of the server's admin listener, as Prometheus scrapes it. */
export async function scrape(server: FleetgateProcess, token?: string) {
  const res = await request(`${server.adminUrl}/metrics`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return { status: res.statusCode, type: res.headers['content-type'], text: await res.body.text() };
}
