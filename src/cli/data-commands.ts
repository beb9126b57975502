import type { Writable } from 'node:stream';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { parseDuration } from '../psks/duration.js';
import {
  allSeries,
  listSeries,
  parseTime,
  querySeries,
  requireSeries,
  seriesCsv,
  seriesPageBody,
  type SeriesQuery,
  type SeriesSummary,
} from '../series/series.service.js';
import { json, printAs, writeOut } from './output.js';
import { seriesRows } from './views.js';

type Args = Record<string, string | number | boolean | undefined>;
const optional = (args: Args, key: string) =>
  args[key] === undefined ? undefined : String(args[key]);

/** Reading data back: the CLI side of the admin API's series routes. */
export const dataCommands: Record<
  string,
  (db: Kysely<Database>, args: Args, out: Writable) => Promise<void>
> = {
  /** Every series, a page at a time; `--limit` prints one page, with the next cursor. */
  async 'series.list'(db, args, out) {
    const fingerprint = String(args.fingerprint);
    if (args.limit === undefined) {
      const series: SeriesSummary[] = [];
      for await (const s of allSeries(db, fingerprint)) series.push(s);
      // --json: the admin API's body when everything fits one page.
      await printAs(out, args.json === true, { series, nextCursor: null }, () =>
        seriesRows(series),
      );
      return;
    }
    const page = await listSeries(db, fingerprint, {
      limit: Number(args.limit),
      cursor: optional(args, 'cursor') ?? null,
    });
    await printAs(
      out,
      args.json === true,
      page,
      () =>
        seriesRows(page.series) +
        (page.nextCursor === null ? '' : `next page: --cursor ${page.nextCursor}\n`),
    );
  },

  /** CSV by default, streamed over the whole range; `--limit` pages, `--json` as the API. */
  async query(db, args, out) {
    const target = await requireSeries(db, String(args.fingerprint), String(args.series));
    const from = optional(args, 'from');
    const to = optional(args, 'to');
    const bucket = optional(args, 'bucket');
    const base: Omit<SeriesQuery, 'limit'> = {
      fromMs: from === undefined ? null : parseTime(from, 'from'),
      toMs: to === undefined ? null : parseTime(to, 'to'),
      bucketMs: bucket === undefined ? null : parseDuration(bucket),
      cursor: optional(args, 'cursor') ?? null,
    };
    const limit = args.limit === undefined ? undefined : Number(args.limit);
    if (args.json === true || limit !== undefined) {
      const page = await querySeries(db, target, { ...base, limit: limit ?? 1000 });
      await writeOut(out, json(seriesPageBody(target, base.bucketMs, page)));
      return;
    }
    for await (const chunk of seriesCsv(db, target, base)) await writeOut(out, chunk);
  },
};
