import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { findDeviceByFingerprint } from '../devices/device.repository.js';
import { notFound } from '../http/app-error.js';
import { findSeriesId, readSeriesPage } from './points.repository.js';

const PAGE_SIZE = 10_000;

/**
 * A series as `epoch_ms,value` lines, oldest first, read in keyset pages so an
 * export of any size runs in constant memory.
 */
export async function* exportSeries(
  db: Kysely<Database>,
  fingerprint: string,
  seriesName: string,
): AsyncGenerator<string> {
  const device = await findDeviceByFingerprint(db, fingerprint.toLowerCase());
  if (!device) throw notFound('device_not_found', `no device with certificate ${fingerprint}`);
  const seriesId = await findSeriesId(db, device.deviceId, seriesName);
  if (seriesId === undefined)
    throw notFound('series_not_found', `device has no series ${seriesName}`);
  let after: string | null = null;
  for (;;) {
    const page = await readSeriesPage(db, seriesId, after, PAGE_SIZE);
    if (page.length === 0) return;
    yield page.map((p) => `${p.epochMs},${p.value}\n`).join('');
    after = page[page.length - 1]!.epochMs;
    if (page.length < PAGE_SIZE) return;
  }
}
