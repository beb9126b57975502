import { clientAddressOf } from '../proxy/request-origin.js';
import type { Request, Response } from 'express';
import type { Kysely } from 'kysely';
import type { Config } from '../config/config.js';
import type { Database } from '../db/schema.js';
import { requireActiveDevice } from '../devices/device-auth.js';
import { requestRotation } from '../devices/rotation.service.js';
import { badRequest } from '../http/app-error.js';

/**
 * POST /device_endpoint/rotate: the next certificate as PEM, either raw
 * (`application/x-pem-file`) or as JSON `{"certificate": "-----BEGIN..."}`.
 * 202: accepted as pending; it becomes active when first presented.
 */
export async function handleRotate(
  db: Kysely<Database>,
  config: Config,
  req: Request,
  res: Response,
) {
  const current = await requireActiveDevice(db, req, config);
  const rotation = await requestRotation(db, current, pemFromBody(req.body), clientAddressOf(req));
  res.status(202).json({ ...rotation, notAfter: rotation.notAfter.toISOString() });
}

function pemFromBody(body: unknown): string {
  if (typeof body === 'string' && body.trim() !== '') return body;
  if (body && typeof body === 'object' && !Array.isArray(body)) {
    const pem = (body as Record<string, unknown>).certificate;
    if (typeof pem === 'string') return pem;
  }
  throw badRequest(
    'invalid_rotation_request',
    'send the new certificate as application/x-pem-file or JSON {"certificate": "<PEM>"}',
  );
}
