import type { Request, Response } from 'express';
import type { Kysely } from 'kysely';
import { enrollOnFirstContact } from '../authorities/first-contact.js';
import { bindCertificate } from '../devices/binding.service.js';
import type { Config } from '../config/config.js';
import type { Database } from '../db/schema.js';
import { badRequest } from '../http/app-error.js';
import { countBind } from '../observability/metrics.js';
import { clientAddressOf } from '../proxy/request-origin.js';
import { PSK_MAX_LENGTH, PSK_MIN_LENGTH } from '../psks/psk-secret.js';
import { requireClientCertificate } from '../tls/client-certificate.js';
import { throttledBind, type Throttles } from '../throttle/throttle.service.js';

/** `{"PSK": "..."}` over mTLS: binds the presented certificate to the PSK's identity. */
export async function handleBind(
  db: Kysely<Database>,
  config: Config,
  throttles: Throttles,
  req: Request,
  res: Response,
) {
  const certificate = requireClientCertificate(req);
  if (isEnrollRequest(req.body)) {
    // `{}`: no PSK, the certificate chain is the credential.
    // Refused enrollments use up the same failure budget as refused binds.
    const enrolled = await throttledBind(
      throttles,
      clientAddressOf(req) ?? 'unknown',
      certificate.fingerprint,
      () =>
        enrollOnFirstContact(db, req, certificate, true, undefined, {
          lifetimeMs: config.registrationLifetimeMs,
        }),
    );
    if (enrolled!.registration) {
      res.status(202).json(enrolled!.registration);
      return;
    }
    res.status(200).json({
      status: enrolled!.status,
      identity: enrolled!.identity,
      name: enrolled!.name,
      fingerprint: certificate.fingerprint,
      boundAt: enrolled!.boundAt.toISOString(),
    });
    return;
  }
  const address = clientAddressOf(req) ?? 'unknown';
  const result = await throttledBind(throttles, address, certificate.fingerprint, () =>
    bindCertificate(db, pskFromBody(req.body), certificate, clientAddressOf(req), {
      registrationLifetimeMs: config.registrationLifetimeMs,
    }),
  );
  countBind(result.status);
  if (result.registration) {
    // Shown once: the PIN goes to the owner, the nonce stays on the device.
    res.status(202).json(result.registration);
    return;
  }
  res.status(200).json({
    status: result.status,
    identity: result.identity,
    fingerprint: certificate.fingerprint,
    boundAt: result.boundAt.toISOString(),
  });
}

function isEnrollRequest(body: unknown): boolean {
  return (
    !!body && typeof body === 'object' && !Array.isArray(body) && Object.keys(body).length === 0
  );
}

function pskFromBody(body: unknown): string {
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw badRequest('invalid_bind_request', 'body must be a JSON object {"PSK": "..."}');
  }
  const psk = (body as Record<string, unknown>).PSK;
  if (typeof psk !== 'string') {
    throw badRequest('invalid_bind_request', 'body must have a string field "PSK"');
  }
  if (psk.length < PSK_MIN_LENGTH || psk.length > PSK_MAX_LENGTH) {
    throw badRequest('invalid_psk', 'PSK is not valid');
  }
  return psk;
}
