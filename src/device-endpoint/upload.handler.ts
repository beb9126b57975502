import type { Request, Response } from 'express';
import type { Kysely } from 'kysely';
import type { Config } from '../config/config.js';
import type { Database } from '../db/schema.js';
import { enrollOnFirstContact } from '../authorities/first-contact.js';
import { requireClientCertificate } from '../tls/client-certificate.js';
import { requireActiveDevice } from '../devices/device-auth.js';
import { ingestUpload } from '../ingest/ingest.service.js';
import { multipartFileParts } from '../ingest/multipart-parts.js';
import type { IngestBackend } from '../ingest/upload-transaction.js';
import { takeUploadAllowance, type Throttles } from '../throttle/throttle.service.js';

/** A multipart upload from a bound device: one series per file part. */
export async function handleUpload(
  db: Kysely<Database>,
  ingest: IngestBackend,
  config: Config,
  throttles: Throttles,
  req: Request,
  res: Response,
) {
  // A device chained to a trusted CA enrolls with its first upload, in this same call.
  await enrollOnFirstContact(db, req, requireClientCertificate(req));
  const { device } = await requireActiveDevice(db, req);
  // If anything fails mid-body, the rest of it is not worth reading: answer and close.
  res.setHeader('Connection', 'close');
  for (const [name, value] of Object.entries(takeUploadAllowance(throttles, device.deviceId))) {
    res.setHeader(name, value);
  }
  const summary = await ingestUpload(
    ingest,
    device.deviceId,
    multipartFileParts(req, { ...config.limits, bodyIdleMs: config.timeouts.bodyIdleMs }),
    {
      maxLineBytes: config.limits.maxLineBytes,
      timestampRange: { minEpochMs: 0, maxEpochMs: Date.now() + config.limits.maxClockSkewMs },
    },
  );
  res.removeHeader('Connection');
  res.status(200).json(summary);
}
