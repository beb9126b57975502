import type { IncomingMessage } from 'node:http';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { lookUpDevice } from '../devices/device-auth.js';
import { forwardedVerdict } from '../proxy/forwarded-certificate.js';
import { clientAddressOf, originOf } from '../proxy/request-origin.js';
import type { CertificateInfo } from '../tls/certificate-info.js';
import { peerIntermediates } from '../tls/client-certificate.js';
import { enrollByChain, type EnrollRegistration, type EnrollResult } from './enrollment.service.js';

/**
 * Enrollment on first contact: a certificate no device has yet, that is not
 * self-signed (self-signed ones bind with a PSK, as before), is enrolled by
 * its chain. Returns null when there is nothing to enroll.
 */
export async function enrollOnFirstContact(
  db: Kysely<Database>,
  req: IncomingMessage,
  certificate: CertificateInfo,
  always = false,
  /** Runs the enrollment attempt (only when there is one), e.g. under the failed-bind throttle. */
  guard: <T>(attempt: () => Promise<T>) => Promise<T> = (attempt) => attempt(),
  registration: EnrollRegistration = null,
): Promise<EnrollResult | null> {
  if (certificate.selfSigned && !always) return null;
  if (!always && (await lookUpDevice(db, certificate))) return null;
  return guard(() =>
    enrollByChain(
      db,
      {
        certificate,
        leafDer: certificate.der,
        intermediates: peerIntermediates(req) ?? [],
        proxyVerdict: originOf(req).kind === 'trusted-proxy' ? forwardedVerdict(req) : null,
      },
      clientAddressOf(req),
      registration,
    ),
  );
}
