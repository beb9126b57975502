import type { Kysely } from 'kysely';
import { insertAuditEvent } from '../audit/audit.repository.js';
import type { Actor } from '../audit/actor.js';
import type { Database } from '../db/schema.js';
import { emitDeviceEvent, type DeviceEvent } from '../devices/device-events.js';
import { notifyDeviceEvent } from '../devices/device-events.repository.js';
import {
  findCertificate,
  insertActiveCertificate,
  lockDevice,
  retireOtherCertificates,
} from '../devices/device.repository.js';
import { requireDeviceByFingerprint } from '../devices/device.service.js';
import { dropRotationsOfDevice } from '../devices/rotation.service.js';
import { badRequest, conflict } from '../http/app-error.js';
import { inspectCertificate, parsePemCertificate } from '../tls/certificate-info.js';
import { assertAcceptableDeviceCertificate } from '../tls/device-certificate-policy.js';
import { deviceNameOf, parseCertificate, sameDeviceName } from './ca-certificates.js';
import { findNameOfDevice } from './device-name.repository.js';

/**
 * An admin's explicit renewal (`fleetgate device replace-cert`): the new
 * certificate becomes the device's active one at once and every other
 * certificate of the device retires now. The device (id, identity, name,
 * series and points) stays the same. A device with a name keeps it: the new
 * certificate's CN must be that name.
 */
export async function replaceDeviceCertificate(
  db: Kysely<Database>,
  fingerprint: string,
  pem: string,
  actor: Actor,
): Promise<{ deviceId: number; identity: string; fingerprint: string; replaced: string }> {
  const found = await requireDeviceByFingerprint(db, fingerprint);
  const certificate = inspectCertificate(parsePemCertificate(pem));
  try {
    assertAcceptableDeviceCertificate(certificate);
  } catch (err) {
    throw badRequest('unacceptable_certificate', (err as Error).message);
  }
  const replaced = await db.transaction().execute(async (trx) => {
    const device = await lockDevice(trx, found.deviceId);
    if (device.revoked_at) throw conflict('device_revoked', 'the device is revoked');
    if (await findCertificate(trx, certificate.fingerprint)) {
      throw conflict('certificate_known', 'this certificate already belongs to a device');
    }
    const name = await findNameOfDevice(trx, device.id);
    if (name) {
      const cn = deviceNameOf(parseCertificate(pem));
      if (cn !== sameDeviceName(name.name)) {
        throw badRequest(
          'device_name_mismatch',
          `the device is named ${name.name}; the new certificate's CN is ${cn ?? 'missing'}`,
        );
      }
    }
    await insertActiveCertificate(trx, device.id, certificate);
    const retired = await retireOtherCertificates(
      trx,
      device.id,
      certificate.fingerprint,
      new Date(),
    );
    await dropRotationsOfDevice(trx, device.id, actor);
    await insertAuditEvent(trx, {
      action: 'certificate.replaced',
      actor: actor.kind,
      identityId: device.identity_id,
      deviceId: device.id,
      fingerprint: certificate.fingerprint,
      remoteAddress: actor.remoteAddress,
      details: { replaces: fingerprint, subject: certificate.subject },
    });
    // The sessions the old certificates hold on any node are closed at once.
    const news: DeviceEvent = { event: 'certificates_refused', fingerprints: retired };
    await notifyDeviceEvent(trx, news);
    return {
      news,
      view: {
        deviceId: device.id,
        identity: found.identityName,
        fingerprint: certificate.fingerprint,
        replaced: fingerprint,
      },
    };
  });
  emitDeviceEvent(replaced.news);
  return replaced.view;
}
