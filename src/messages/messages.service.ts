import type { Kysely } from 'kysely';
import type { Config } from '../config/config.js';
import type { Database } from '../db/schema.js';
import { requireActiveCertificate } from '../devices/device-auth.js';
import { ingestBatch, type IngestSummary } from '../ingest/ingest.service.js';
import type { IngestBackend } from '../ingest/upload-transaction.js';
import { countUploadedPoints } from '../observability/metrics.js';
import { takeUploadAllowance, type Throttles } from '../throttle/throttle.service.js';
import type { CertificateInfo } from '../tls/certificate-info.js';
import { badRequest } from '../http/app-error.js';
import { assertFaithfulJson, MessageBatch } from './message-batch.js';
import { seriesPointsInput } from './series-points.js';
import { deviceServerTimes } from './server-time.js';

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
  return storeForDevice(deps, certificate, (limits, now, claimNow) => {
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
      now,
      rawText,
    );
    if (batch.usesServerTime) claimNow();
    return batch.inputs();
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
  return storeForDevice(deps, certificate, (limits, now) => {
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
 * then ingestBatch. `now` is the server's time for messages without `ts`,
 * unique per device once claimed (server-time.ts); inputsOf runs without an
 * await, so no other request of the device can take the same one.
 */
async function storeForDevice(
  deps: MessageDeps,
  certificate: CertificateInfo,
  inputsOf: (
    limits: MessageDeps['config']['limits'],
    now: number,
    claimNow: () => void,
  ) => Parameters<typeof ingestBatch>[2],
): Promise<StoredMessages> {
  const device = await requireActiveCertificate(deps.db, certificate);
  const rateLimit = await takeUploadAllowance(deps.throttles, device.deviceId);
  const { limits } = deps.config;
  const now = deviceServerTimes.peek(device.deviceId);
  const inputs = inputsOf(limits, now, () => deviceServerTimes.claim(device.deviceId, now));
  const summary = await ingestBatch(
    deps.ingest,
    device.deviceId,
    inputs,
    { maxSeriesPerDevice: limits.maxSeriesPerDevice },
    () => badRequest('empty_batch', 'the batch holds no points'),
  );
  countUploadedPoints(summary);
  return { summary, rateLimit };
}
