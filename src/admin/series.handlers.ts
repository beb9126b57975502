import { once } from 'node:events';
import type { Response } from 'express';
import { z } from 'zod';
import { parseDuration } from '../psks/duration.js';
import {
  MAX_PAGE,
  MAX_SERIES_PAGE,
  parseTime,
  querySeries,
  requireSeries,
  seriesCsv,
  seriesPageBody,
  listSeries,
  toCsv,
  type SeriesQuery,
} from '../series/series.service.js';
import { SeriesList, SeriesPage } from './response-schemas.js';
import { adminRoute, fingerprintParam, limitQuery } from './admin-route.js';

const pointsQuery = z.object({
  series: z.string().min(1).max(128).describe('series name'),
  from: z.string().optional().describe('inclusive start: epoch ms or ISO 8601'),
  to: z.string().optional().describe('exclusive end: epoch ms or ISO 8601'),
  bucket: z
    .string()
    .optional()
    .describe('aggregate into buckets of this width (90s, 1m, 1h, 1d), aligned to the Unix epoch'),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_PAGE)
    .optional()
    .describe('rows per page; JSON default 1000; CSV without a limit streams the whole range'),
  cursor: z.string().max(100).optional().describe('nextCursor of the previous page'),
  format: z
    .enum(['json', 'csv'])
    .optional()
    .describe('default json, or csv if Accept asks for text/csv'),
});

export const seriesRoutes = [
  adminRoute({
    method: 'get',
    path: '/v1/devices/:fingerprint/series',
    summary: "List a device's series in name order with point count, first and last timestamp",
    tag: 'data',
    params: fingerprintParam,
    query: z.object({
      limit: limitQuery(MAX_SERIES_PAGE, 100),
      cursor: z.string().max(200).optional().describe('nextCursor of the previous page'),
    }),
    response: SeriesList,
    responses: {
      200: '`{"series": [{name, points, first, last, firstEpochMs, lastEpochMs}], "nextCursor": string | null}`',
      400: 'a cursor this list did not return',
      404: 'no such device',
    },
    async handle({ db }, { params, query }, _req, res) {
      res.json(
        await listSeries(db, params.fingerprint, {
          limit: query.limit,
          cursor: query.cursor ?? null,
        }),
      );
    },
  }),
  adminRoute({
    method: 'get',
    path: '/v1/devices/:fingerprint/points',
    summary:
      'Query one series by time range, raw or in time buckets (avg/min/max/count), JSON or CSV',
    tag: 'data',
    params: fingerprintParam,
    query: pointsQuery,
    produces: ['application/json', 'text/csv'],
    response: SeriesPage,
    responses: {
      200: 'JSON `{"series", "points": [{t, v}] or "buckets": [{t, count, avg, min, max}], "nextCursor"}`; CSV lines `epoch_ms,value` (buckets: with a header), next page cursor in the X-Next-Cursor header',
      404: 'no such device or series',
    },
    async handle({ db }, { params, query }, req, res) {
      const target = await requireSeries(db, params.fingerprint, query.series);
      const csv =
        query.format === 'csv' ||
        (query.format === undefined &&
          req.accepts(['application/json', 'text/csv']) === 'text/csv');
      const base: Omit<SeriesQuery, 'limit'> = {
        fromMs: query.from === undefined ? null : parseTime(query.from, 'from'),
        toMs: query.to === undefined ? null : parseTime(query.to, 'to'),
        bucketMs: query.bucket === undefined ? null : parseDuration(query.bucket),
        cursor: query.cursor ?? null,
      };
      if (csv && query.limit === undefined) {
        res.status(200).type('text/csv; charset=utf-8');
        await streamOut(res, seriesCsv(db, target, base));
        return;
      }
      const page = await querySeries(db, target, { ...base, limit: query.limit ?? 1000 });
      if (csv) {
        if (page.nextCursor) res.setHeader('X-Next-Cursor', page.nextCursor);
        const header = base.bucketMs === null ? '' : 'bucket_start_ms,count,avg,min,max\n';
        res
          .status(200)
          .type('text/csv; charset=utf-8')
          .send(header + toCsv(page.rows));
        return;
      }
      res.json(seriesPageBody(target, base.bucketMs, page));
    },
  }),
];

/** Writes with backpressure, and stops reading the database when the client goes away. */
async function streamOut(res: Response, chunks: AsyncIterable<string>): Promise<void> {
  for await (const chunk of chunks) {
    if (res.destroyed) return;
    if (!res.write(chunk)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
  }
  res.end();
}
