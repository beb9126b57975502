import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Kysely } from 'kysely';
import type { Config } from '../config/config.js';
import type { Database } from '../db/schema.js';
import { enrollOnFirstContact } from '../authorities/first-contact.js';
import { lookUpDevice, requireActive } from '../devices/device-auth.js';
import { bodyGuardOptions, guardBody } from '../http/body-guard.js';
import { continueIfExpected } from '../http/expect-continue.js';
import { answerJson } from '../http/json-answer.js';
import { ingestUpload } from '../ingest/ingest.service.js';
import { multipartFileParts } from '../ingest/multipart-parts.js';
import type { IngestBackend } from '../ingest/upload-transaction.js';
import { countUploadedPoints } from '../observability/metrics.js';
import { requireClientCertificate } from '../tls/client-certificate.js';
import { clientAddressOf } from '../proxy/request-origin.js';
import {
  takeUploadAllowance,
  throttledBind,
  type Throttles,
} from '../throttle/throttle.service.js';
import { abortableParts } from './abortable-parts.js';
import type { UploadSlots } from './upload-slots.js';

/** A multipart upload from a bound device: one series per file part. */
export async function handleUpload(
  db: Kysely<Database>,
  ingest: IngestBackend,
  config: Config,
  throttles: Throttles,
  slots: UploadSlots,
  req: IncomingMessage,
  res: ServerResponse,
) {
  const releaseCertificateSlot = slots.take(
    'certificate',
    requireClientCertificate(req).fingerprint,
  );
  let releaseDeviceSlot = () => {};
  try {
    // A device chained to a trusted CA enrolls with its first upload, in this same call;
    // a refused enrollment uses up the same failure budget as a refused bind.
    // One lookup serves both the enrollment check and the device check; only a
    // certificate that was just enrolled is looked up again.
    const certificate = requireClientCertificate(req);
    let found = await lookUpDevice(db, certificate);
    if (!found) {
      const enrolled = await enrollOnFirstContact(db, req, certificate, false, (attempt) =>
        throttledBind(
          throttles,
          clientAddressOf(req) ?? 'unknown',
          certificate.fingerprint,
          attempt,
        ),
      );
      if (enrolled) found = await lookUpDevice(db, certificate);
    }
    const device = requireActive(found);
    // If anything fails mid-body, the rest of it is not worth reading: answer and close.
    res.setHeader('Connection', 'close');
    releaseDeviceSlot = slots.take('device', device.deviceId);
    for (const [name, value] of Object.entries(
      await takeUploadAllowance(throttles, device.deviceId),
    )) {
      res.setHeader(name, value);
    }
    // Only now, with the device known and allowed, may an `Expect: 100-continue` client send.
    continueIfExpected(req, res);
    // A trickling or stalled client is cut off with 408 and its transaction rolled back.
    const abort = new AbortController();
    const guard = guardBody(req, bodyGuardOptions(config), (err) => abort.abort(err));
    try {
      const summary = await ingestUpload(
        ingest,
        device.deviceId,
        abortableParts(
          multipartFileParts(req, { ...config.limits, bodyIdleMs: config.timeouts.bodyIdleMs }),
          abort.signal,
        ),
        {
          maxLineBytes: config.limits.maxLineBytes,
          timestampRange: {
            minEpochMs: config.limits.minTimestampMs,
            maxEpochMs: Date.now() + config.limits.maxClockSkewMs,
          },
          maxSeriesPerDevice: config.limits.maxSeriesPerDevice,
        },
      );
      countUploadedPoints(summary);
      res.removeHeader('Connection');
      answerJson(res, 200, summary);
    } finally {
      guard.stop();
    }
  } finally {
    releaseDeviceSlot();
    releaseCertificateSlot();
  }
}
