import type { AuthorityView } from '../authorities/authority.service.js';
import type { AuditEventRow } from '../audit/audit.repository.js';
import type { DeviceView } from '../devices/device.service.js';
import type { PendingRotationView } from '../devices/rotation.service.js';
import type { IdentityView } from '../identities/identity.service.js';
import type { PskView } from '../psks/psk.service.js';
import type { PendingRegistrationView } from '../registrations/registration.service.js';
import type { RetentionPlan } from '../retention/retention.service.js';
import type { SeriesSummary } from '../series/series.service.js';
import { details, table } from './output.js';

/** The human forms of what admin commands print; `--json` prints the objects instead. */
export const identityRows = (identities: IdentityView[]) =>
  table(
    ['NAME', 'STATUS', 'DEVICES', 'MAX', 'REVOKED', 'PSKS', 'CREATED'],
    identities.map((i) => [
      i.name,
      i.status,
      i.devices,
      i.maxDevices ?? 'none',
      i.revokedDevices,
      i.psks,
      i.createdAt,
    ]),
  );

export const identityDetails = (i: IdentityView) =>
  details([
    ['name', i.name],
    ['status', i.status],
    ['devices', i.devices],
    ['max devices', i.maxDevices ?? 'none'],
    ['require confirmation', i.requireConfirmation ? 'on' : 'off'],
    ['revoked devices', i.revokedDevices],
    ['psks', i.psks],
    ['created', i.createdAt],
    ['disabled', i.disabledAt],
  ]);

export const registrationRows = (registrations: PendingRegistrationView[]) =>
  table(
    ['RID', 'STATUS', 'DEVICE', 'FINGERPRINT', 'REQUESTED', 'FROM', 'EXPIRES', 'WRONG'],
    registrations.map((r) => [
      r.rid,
      r.status,
      r.deviceId,
      r.fingerprint,
      r.requestedAt,
      r.requestedFrom ?? '',
      new Date(r.expiresOn).toISOString(),
      r.failedAttempts,
    ]),
  );

export const pskRows = (psks: PskView[]) =>
  table(
    ['ID', 'PREFIX', 'STATUS', 'USES', 'LIMIT', 'CREATED', 'EXPIRES'],
    psks.map((p) => [
      p.id,
      p.prefix,
      p.status,
      p.uses,
      p.maxDevices ?? 'none',
      p.createdAt,
      p.expiresAt ?? 'never',
    ]),
  );

export const deviceRows = (devices: DeviceView[], withIdentity = false) =>
  table(
    [
      ...(withIdentity ? ['IDENTITY'] : []),
      'FINGERPRINT',
      'STATUS',
      'SUBJECT',
      'SERIAL',
      'NOT AFTER',
      'BOUND',
      'LAST SEEN',
    ],
    devices.map((d) => [
      ...(withIdentity ? [d.identity] : []),
      d.certificate?.fingerprint,
      d.status,
      d.certificate?.subject,
      d.certificate?.serialNumber,
      d.certificate?.notAfter,
      d.boundAt,
      d.lastSeenAt,
    ]),
  );

export const deviceDetails = (d: DeviceView) =>
  details([
    ['device id', d.id],
    ['identity', d.identity],
    ['status', d.status],
    ['psk id', d.pskId ?? '-'],
    ['enrolled by CA', d.enrolledByCa ?? '-'],
    ['bound at', d.boundAt],
    ['bound from', d.boundFrom],
    ['last seen', d.lastSeenAt],
    ['revoked at', d.revokedAt],
    ['revoked reason', d.revokedReason],
  ]) +
  '\n' +
  table(
    ['CERTIFICATE', 'STATE', 'SUBJECT', 'SERIAL', 'NOT BEFORE', 'NOT AFTER', 'RETIRED AT'],
    d.certificates.map((c) => [
      c.fingerprint,
      c.state,
      c.subject,
      c.serialNumber,
      c.notBefore,
      c.notAfter,
      c.retiredAt,
    ]),
  );

export const rotationRows = (rotations: PendingRotationView[]) =>
  table(
    ['ID', 'IDENTITY', 'DEVICE', 'REPLACES', 'NEW CERTIFICATE', 'REQUESTED', 'EXPIRES'],
    rotations.map((r) => [
      r.id,
      r.identity,
      r.deviceId,
      r.replaces,
      r.fingerprint,
      r.requestedAt,
      r.expiresAt,
    ]),
  );

export const auditRows = (events: AuditEventRow[]) =>
  table(
    ['AT', 'ACTION', 'ACTOR', 'IDENTITY', 'PSK', 'FINGERPRINT', 'FROM', 'DETAILS'],
    events.map((e) => [
      e.at,
      e.action,
      e.actor,
      e.identity,
      e.pskId,
      e.fingerprint,
      e.remoteAddress,
      Object.keys(e.details).length ? JSON.stringify(e.details) : '',
    ]),
  );

export const seriesRows = (series: SeriesSummary[]) =>
  table(
    ['SERIES', 'POINTS', 'FIRST', 'LAST'],
    series.map((s) => [s.name, s.points, s.first, s.last]),
  );

export const retentionReport = (plan: RetentionPlan) => {
  if (plan.partitions.length === 0) {
    return `no points before ${plan.horizon} in whole months: nothing to delete\n`;
  }
  const rows = table(
    ['PARTITION', 'MONTH', 'POINTS', 'BYTES'],
    plan.partitions.map((p) => [p.name, p.month, p.rows, p.bytes]),
  );
  const total = `${plan.rows} points in ${plan.partitions.length} month(s) before ${plan.horizon}`;
  return plan.applied
    ? `${rows}deleted ${total}\n`
    : `${rows}would delete ${total}; run again with --yes to delete them\n`;
};
export const authorityRows = (authorities: AuthorityView[]) =>
  table(
    ['FINGERPRINT', 'SUBJECT', 'NOT AFTER', 'CRL REVOKED', 'CRL NEXT UPDATE'],
    authorities.map((a) => [
      a.fingerprint,
      a.subject,
      a.notAfter,
      a.revokedSerials,
      a.crlNextUpdate ?? '-',
    ]),
  );
