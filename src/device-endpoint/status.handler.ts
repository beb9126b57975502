import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { certificateRetired, lookUpDevice } from '../devices/device-auth.js';
import { answerJson } from '../http/json-answer.js';
import { requireClientCertificate } from '../tls/client-certificate.js';

/**
 * GET /device_endpoint: what fleetgate thinks of the presented certificate,
 * so firmware can tell whether it must enroll. Always 200 for a readable
 * certificate: `unbound` is an answer, not an error.
 */
export async function handleStatus(
  db: Kysely<Database>,
  req: IncomingMessage,
  res: ServerResponse,
) {
  const certificate = requireClientCertificate(req);
  const device = await lookUpDevice(db, certificate);
  const base = {
    fingerprint: certificate.fingerprint,
    notAfter: certificate.notAfter.toISOString(),
  };
  if (!device) {
    answerJson(res, 200, { status: 'unbound', ...base });
    return;
  }
  // Revoked by an admin, or by a CRL of the CA that admitted it.
  const status =
    device.revokedAt || device.revokedByCaSerial
      ? 'revoked'
      : certificateRetired(device)
        ? 'retired'
        : device.identityDisabledAt
          ? 'disabled'
          : device.pendingConfirmation
            ? 'pending_confirmation'
            : 'active';
  answerJson(res, 200, {
    status,
    ...base,
    identity: device.identityName,
    boundAt: device.boundAt.toISOString(),
    ...(device.revokedAt ? { revokedAt: device.revokedAt.toISOString() } : {}),
    ...(device.certificateState === 'retired' && device.certificateRetiredAt
      ? { retiredAt: device.certificateRetiredAt.toISOString() }
      : {}),
  });
}
