import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { badRequest } from '../http/app-error.js';
import type { CertificateInfo } from '../tls/certificate-info.js';
import { requireActiveCertificate } from './device-auth.js';
import { saveDeviceState, type DeviceState } from './device-state.repository.js';

const MAX_STATUS_CHARS = 128;

/**
 * Records a state the device published (seed 000): a JSON object with a
 * string `status`, kept whole as the device's last state with the server's
 * time. Anything else is refused with a typed error and records nothing.
 */
export async function recordDeviceState(
  db: Kysely<Database>,
  certificate: CertificateInfo,
  payload: Buffer,
  now = new Date(),
): Promise<DeviceState> {
  let state: unknown;
  try {
    state = JSON.parse(payload.toString('utf8'));
  } catch {
    throw badRequest('invalid_json', 'the state is not valid JSON');
  }
  if (typeof state !== 'object' || state === null || Array.isArray(state)) {
    throw badRequest('invalid_state', 'the state is a JSON object with a "status" field');
  }
  const { status } = state as Record<string, unknown>;
  if (typeof status !== 'string' || status.length === 0 || status.length > MAX_STATUS_CHARS) {
    throw badRequest(
      'missing_status',
      `the state needs a "status" field: a string of 1-${MAX_STATUS_CHARS} characters`,
    );
  }
  const device = await requireActiveCertificate(db, certificate);
  const fields = state as Record<string, unknown>;
  await saveDeviceState(db, device.deviceId, status, fields, now);
  return { status, state: fields, reportedAt: now };
}
