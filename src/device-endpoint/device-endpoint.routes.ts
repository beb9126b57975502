import express, { Router, type NextFunction, type Request, type Response } from 'express';
import type { Kysely } from 'kysely';
import type { Config } from '../config/config.js';
import type { Database } from '../db/schema.js';
import { AppError, unsupportedMediaType } from '../http/app-error.js';
import type { IngestBackend } from '../ingest/upload-transaction.js';
import { requireClientCertificate } from '../tls/client-certificate.js';
import { handleBind } from './bind.handler.js';
import { handleUpload } from './upload.handler.js';

export const DEVICE_ENDPOINT = '/device_endpoint';

/**
 * POST /device_endpoint carries two messages told apart by Content-Type: the
 * bind JSON and the multipart upload. The certificate is checked before the
 * body is read, so a client without one is turned away at once.
 */
export function deviceEndpointRoutes(
  db: Kysely<Database>,
  config: Config,
  ingest: IngestBackend,
): Router {
  const router = Router();
  const json = express.json({ limit: config.limits.maxJsonBytes, strict: false, type: () => true });

  router.post(DEVICE_ENDPOINT, (req: Request, res: Response, next: NextFunction) => {
    requireClientCertificate(req);
    if (req.is('application/json')) {
      json(req, res, (err?: unknown) => {
        if (err) return next(err);
        handleBind(db, req, res).catch(next);
      });
      return;
    }
    if (req.is('multipart/form-data')) {
      handleUpload(db, ingest, config, req, res).catch(next);
      return;
    }
    throw unsupportedMediaType(
      'send application/json to bind a certificate or multipart/form-data to upload series',
    );
  });

  router.all(DEVICE_ENDPOINT, (req) => {
    throw new AppError(405, 'method_not_allowed', `${req.method} is not allowed here`, undefined, {
      Allow: 'POST',
    });
  });
  return router;
}
