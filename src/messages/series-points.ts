import { badRequest } from '../http/app-error.js';
import { isSeriesName, type SeriesInput } from '../ingest/ingest.service.js';
import { parsePointRecord, type TimestampRange } from '../ingest/point-line.js';
import { PointScanner } from '../ingest/point-scanner.js';

export interface SeriesPointsLimits {
  maxLineBytes: number;
  timestampRange: TimestampRange;
}

/**
 * The points of one series sent as JSON (the MQTT `points` request, issue 13):
 * `{"series": "name", "points": [[epoch_ms, value], ...]}`, or `"points"` as
 * the CSV text of an upload part (`epoch_ms,value` lines). Checked whole
 * before anything is written; the first value of a repeated timestamp wins,
 * as in uploads.
 */
export function seriesPointsInput(body: unknown, limits: SeriesPointsLimits): SeriesInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw badRequest('invalid_message', '"data" must be {"series": "...", "points": [...]}');
  }
  const { series, points, ...rest } = body as Record<string, unknown>;
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) {
    throw badRequest('invalid_message', `unknown field "${unknown.slice(0, 40)}" in "data"`);
  }
  if (typeof series !== 'string' || !isSeriesName(series)) {
    throw badRequest(
      'invalid_series_name',
      '"series" must be a series name (1-128 of A-Z a-z 0-9 _ . : / -)',
    );
  }
  const epochMs: number[] = [];
  const values: number[] = [];
  if (typeof points === 'string') {
    const scanner = new PointScanner(series, limits, (ts, value) => {
      epochMs.push(ts);
      values.push(value);
    });
    scanner.push(Buffer.from(points, 'utf8'));
    scanner.end();
  } else if (Array.isArray(points)) {
    points.forEach((point, index) => {
      if (!Array.isArray(point) || point.length !== 2) {
        throw badRequest('invalid_point', `point ${index} is not [epoch_ms, value]`, { index });
      }
      const [ts, value] = point as [unknown, unknown];
      if (typeof ts !== 'number') {
        throw badRequest('invalid_timestamp', `point ${index}: the timestamp is not a number`, {
          index,
        });
      }
      const checked = parsePointRecord([String(ts), '0'], limits.timestampRange);
      if (typeof checked === 'string') {
        throw badRequest('invalid_timestamp', `point ${index}: ${checked}`, { index });
      }
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        throw badRequest('invalid_value', `point ${index}: the value is not a finite number`, {
          index,
        });
      }
      epochMs.push(checked.epochMs);
      values.push(value);
    });
  } else {
    throw badRequest(
      'invalid_message',
      '"points" must be an array of [epoch_ms, value] or CSV text of epoch_ms,value lines',
    );
  }
  if (epochMs.length === 0) throw badRequest('empty_batch', 'the batch holds no points');
  return {
    name: series,
    async feed(add) {
      for (let i = 0; i < epochMs.length; i++) add(epochMs[i]!, values[i]!);
      return epochMs.length;
    },
  };
}
