import type { Request, Response } from 'express';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { badRequest } from '../http/app-error.js';
import { clientAddressOf } from '../proxy/request-origin.js';
import { completeRegistration, registrationStatus } from '../registrations/registration.service.js';
import type { TokenBuckets } from '../throttle/token-bucket.js';
import { takeStatusPoll } from '../throttle/throttle.service.js';
import { requireClientCertificate } from '../tls/client-certificate.js';

/** GET /device_endpoint/registrations/:rid/status, polled by the waiting device. */
export async function handleRegistrationStatus(
  db: Kysely<Database>,
  polls: TokenBuckets | null,
  req: Request,
  res: Response,
) {
  const certificate = requireClientCertificate(req);
  takeStatusPoll(polls, certificate.fingerprint);
  res.status(200).json(await registrationStatus(db, String(req.params.rid), certificate));
}

/** PUT /device_endpoint/registrations/:rid `{"nonce": "..."}`: the device's last step. */
export async function handleRegistrationComplete(
  db: Kysely<Database>,
  req: Request,
  res: Response,
) {
  const certificate = requireClientCertificate(req);
  const body: unknown = req.body;
  const nonce =
    body && typeof body === 'object' && !Array.isArray(body)
      ? (body as Record<string, unknown>).nonce
      : undefined;
  if (typeof nonce !== 'string' || nonce.length === 0 || nonce.length > 256) {
    throw badRequest('invalid_registration_request', 'body must be a JSON object {"nonce": "..."}');
  }
  const view = await completeRegistration(
    db,
    String(req.params.rid),
    nonce,
    certificate,
    clientAddressOf(req),
  );
  res.status(200).json(view);
}
