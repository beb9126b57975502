import { z } from 'zod';

/**
 * The shapes of the admin API's answers, for the OpenAPI document (and for
 * the tests, which check real answers against them). Dates are ISO 8601.
 */
export const time = z.iso.datetime();
const nullableTime = time.nullable();

export const Identity = z
  .object({
    name: z.string(),
    status: z.enum(['active', 'disabled']),
    createdAt: time,
    disabledAt: nullableTime,
    maxDevices: z.number().int().nullable(),
    requireConfirmation: z
      .boolean()
      .describe("new devices wait for their owner's confirmation with a PIN"),
    devices: z.number().int().describe('bound and not revoked: what counts against maxDevices'),
    revokedDevices: z.number().int(),
    psks: z.number().int(),
  })
  .meta({ id: 'Identity' });

export const Psk = z
  .object({
    id: z.number().int(),
    identity: z.string(),
    prefix: z.string().describe('the first characters of the secret'),
    status: z.enum(['active', 'revoked', 'expired', 'used_up']),
    createdAt: time,
    expiresAt: nullableTime,
    revokedAt: nullableTime,
    uses: z.number().int().describe('devices bound with this PSK'),
    maxDevices: z.number().int().nullable(),
    singleUse: z.boolean(),
  })
  .meta({ id: 'Psk' });

export const IssuedPsk = z
  .object({ secret: z.string().describe('shown in this answer only'), psk: Psk })
  .meta({ id: 'IssuedPsk' });

export const Certificate = z
  .object({
    fingerprint: z.string(),
    subject: z.string(),
    issuer: z.string(),
    serialNumber: z.string(),
    notBefore: time,
    notAfter: time,
    state: z.enum(['pending', 'active', 'retired']),
    addedAt: time,
    activatedAt: nullableTime,
    retiredAt: nullableTime.describe('retired: when it stops or stopped being accepted'),
  })
  .meta({ id: 'Certificate' });

export const Device = z
  .object({
    id: z.number().int(),
    identity: z.string(),
    status: z.enum(['active', 'revoked', 'disabled', 'pending_confirmation']),
    pskId: z.number().int().nullable().describe('null for a device enrolled by certificate chain'),
    enrolledByCa: z
      .string()
      .nullable()
      .describe('fingerprint of the CA that admitted a device enrolled by certificate chain'),
    boundAt: time,
    boundFrom: z.string().nullable(),
    lastSeenAt: nullableTime,
    revokedAt: nullableTime,
    revokedReason: z.string().nullable(),
    certificate: Certificate.nullable(),
    pendingCertificate: Certificate.nullable(),
    certificates: z.array(Certificate),
    lastState: z
      .object({
        status: z.string(),
        state: z.record(z.string(), z.unknown()).describe('the JSON object as published'),
        at: time,
      })
      .nullable()
      .describe('the last state published on devices/out/<identity>/<device>/state (MQTT)'),
  })
  .meta({ id: 'Device' });

export const PendingRotation = z
  .object({
    id: z.number().int(),
    deviceId: z.number().int(),
    identity: z.string(),
    replaces: z.string().describe('fingerprint of the certificate that requested the rotation'),
    fingerprint: z.string().describe('fingerprint of the new certificate'),
    subject: z.string(),
    issuer: z.string(),
    serialNumber: z.string(),
    notBefore: time,
    notAfter: time,
    requestedAt: time,
    expiresAt: time.describe('dropped unless completed by then'),
  })
  .meta({ id: 'PendingRotation' });

export const SeriesSummary = z
  .object({
    name: z.string(),
    points: z.number().int(),
    first: nullableTime,
    last: nullableTime,
    firstEpochMs: z.number().int().nullable(),
    lastEpochMs: z.number().int().nullable(),
  })
  .meta({ id: 'SeriesSummary' });

export const AuditEvent = z
  .object({
    id: z.string(),
    at: time,
    action: z.string(),
    actor: z.enum(['device', 'admin-api', 'cli', 'server']),
    identity: z.string().nullable(),
    pskId: z.number().int().nullable(),
    deviceId: z.number().int().nullable(),
    fingerprint: z.string().nullable(),
    remoteAddress: z.string().nullable(),
    details: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'AuditEvent' });

const cursor = z.string().nullable().describe('pass as cursor for the next page; null at the end');

export const SeriesPage = z
  .object({
    series: z.string(),
    bucketMs: z.number().int().nullable(),
    points: z.array(z.object({ t: z.number().int(), v: z.number() })).optional(),
    buckets: z
      .array(
        z.object({
          t: z.number().int().describe('bucket start, epoch ms'),
          count: z.number().int(),
          avg: z.number(),
          min: z.number(),
          max: z.number(),
        }),
      )
      .optional(),
    nextCursor: cursor,
  })
  .meta({ id: 'SeriesPage' });

export const Registration = z
  .object({
    rid: z.string(),
    status: z.enum([
      'PENDING_USER_CONFIRMATION',
      'PENDING_DEVICE_COMPLETION',
      'REGISTERED',
      'EXPIRED',
      'REVOKED',
    ]),
    deviceId: z.number().int(),
    fingerprint: z.string(),
    requestedAt: z.string(),
    requestedFrom: z.string().nullable(),
    expiresOn: z.number().int().describe('epoch milliseconds'),
    failedAttempts: z.number().int().describe('wrong PINs or serials so far; 5 revoke it'),
  })
  .meta({ id: 'Registration' });
export const RegistrationList = z.object({ registrations: z.array(Registration) });

export const IdentityList = z.object({ identities: z.array(Identity) });
export const PskList = z.object({ psks: z.array(Psk) });
export const DevicePage = z.object({ devices: z.array(Device), nextCursor: cursor });
export const SeriesList = z.object({ series: z.array(SeriesSummary), nextCursor: cursor });
export const AuditPage = z.object({ events: z.array(AuditEvent), nextCursor: cursor });
export const PendingRotationPage = z.object({
  rotations: z.array(PendingRotation),
  nextCursor: cursor,
});
