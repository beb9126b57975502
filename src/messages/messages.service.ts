import type { Kysely } from 'kysely';
import type { Config } from '../config/config.js';
import type { Database } from '../db/schema.js';
import { requireActiveCertificate } from '../devices/device-auth.js';
import { takeServerTime } from '../devices/device.repository.js';
import { retryingConflicts } from '../ingest/conflict-retry.js';
import { ingestBatch, type IngestSummary, type SeriesInput } from '../ingest/ingest.service.js';
import type { IngestBackend } from '../ingest/upload-transaction.js';
import { countUploadedPoints } from '../observability/metrics.js';
import { takeUploadAllowance, type Throttles } from '../throttle/throttle.service.js';
import type { CertificateInfo } from '../tls/certificate-info.js';
import { badRequest } from '../http/app-error.js';
import { assertFaithfulJson, MessageBatch } from './message-batch.js';
import { seriesPointsInput } from './series-points.js';

export interface MessageDeps {
  db: Kysely<Database>;
  ingest: IngestBackend;
  config: Config;
  throttles: Throttles;
}

export interface StoredMessages {
  summary: IngestSummary;
  /** The RateLimit headers of the upload budget, for an HTTP answer. */
  rateLimit: Record<string, string>;
}

/**
 * Stores a batch of JSON messages of the device behind `certificate`, with
 * the rules of an upload: the device is looked up afresh (a revoked one is
 * refused at once), one batch takes one upload from its budget, the batch is
 * checked whole before anything is written, and the points go through the
 * one ingest path (ingestBatch), in one transaction. Resolves only after the
 * commit.
 */
export async function storeMessages(
  deps: MessageDeps,
  certificate: CertificateInfo,
  body: unknown,
  rawText: string | undefined,
): Promise<StoredMessages> {
  return storeForDevice(deps, certificate, async (limits, now, serverTime) => {
    const batch = MessageBatch.from(
      body,
      {
        maxFields: limits.maxMessageFields,
        maxMessages: limits.maxMessages,
        timestampRange: {
          minEpochMs: limits.minTimestampMs,
          maxEpochMs: now + limits.maxClockSkewMs,
        },
      },
      rawText,
    );
    return batch.inputs(batch.usesServerTime ? await serverTime() : undefined);
  });
}

/**
 * Stores the points of one series sent as JSON (see series-points.ts) with
 * the same rules as storeMessages: fresh device lookup, upload budget, the
 * whole batch checked first, one transaction through ingestBatch.
 */
export async function storeSeriesPoints(
  deps: MessageDeps,
  certificate: CertificateInfo,
  body: unknown,
  rawText: string | undefined,
): Promise<StoredMessages> {
  return storeForDevice(deps, certificate, async (limits, now) => {
    if (rawText !== undefined) assertFaithfulJson(rawText);
    return [
      seriesPointsInput(body, {
        maxLineBytes: limits.maxLineBytes,
        timestampRange: {
          minEpochMs: limits.minTimestampMs,
          maxEpochMs: now + limits.maxClockSkewMs,
        },
      }),
    ];
  });
}

/**
 * The rules both share: device looked up afresh, one upload from its budget,
 * then ingestBatch. `now` is this node's clock, for the accepted range of
 * `ts`. `serverTime` takes the time of the messages without `ts`, asked only
 * by a batch that has some: unique per device across every node sharing the
 * database (takeServerTime), so two readings of one device are never stored
 * at one time and the second answered as a "duplicate".
 */
async function storeForDevice(
  deps: MessageDeps,
  certificate: CertificateInfo,
  inputsOf: (
    limits: MessageDeps['config']['limits'],
    now: number,
    serverTime: () => Promise<number>,
  ) => Promise<SeriesInput[]>,
): Promise<StoredMessages> {
  const device = await requireActiveCertificate(deps.db, certificate);
  const rateLimit = await takeUploadAllowance(deps.throttles, device.deviceId);
  const { limits } = deps.config;
  const now = Date.now();
  const inputs = await inputsOf(
    limits,
    now,
    async () => (await takeServerTime(deps.db, device.deviceId, now)) ?? now,
  );
  const summary = await retryingConflicts(() =>
    ingestBatch(
      deps.ingest,
      device.deviceId,
      inputs,
      { maxSeriesPerDevice: limits.maxSeriesPerDevice },
      () => badRequest('empty_batch', 'the batch holds no points'),
    ),
  );
  countUploadedPoints(summary);
  return { summary, rateLimit };
}
