import type { ColumnType, Generated } from 'kysely';

/** One interface per table; the Database type below is what kysely sees. */
type CreatedAt = ColumnType<Date, Date | undefined, never>;

export interface IdentityTable {
  id: Generated<number>;
  name: string;
  created_at: CreatedAt;
  disabled_at: Date | null;
  /** Devices the identity may have bound at once (revoked ones do not count). */
  max_devices: ColumnType<number | null, number | null | undefined, number | null>;
}

export interface PskTable {
  id: Generated<number>;
  identity_id: number;
  /** SHA-256 of the secret; the secret itself is never stored. */
  secret_hash: Buffer;
  /** First characters of the secret, so an admin can tell keys apart. */
  prefix: string;
  max_devices: number | null;
  expires_at: Date | null;
  revoked_at: Date | null;
  devices_bound: ColumnType<number, number | undefined, number>;
  single_use: ColumnType<boolean, boolean | undefined, boolean>;
  created_at: CreatedAt;
}

export interface DeviceTable {
  id: Generated<number>;
  identity_id: number;
  psk_id: number;
  bound_at: CreatedAt;
  bound_from: string | null;
  last_seen_at: Date | null;
  revoked_at: Date | null;
  revoked_reason: ColumnType<string | null, string | null | undefined, string | null>;
}

export type CertificateState = 'pending' | 'active' | 'retired';

export interface DeviceCertificateTable {
  fingerprint: string;
  device_id: number;
  subject: string;
  issuer: string;
  serial_number: string;
  not_before: Date;
  not_after: Date;
  added_at: CreatedAt;
  state: ColumnType<CertificateState, CertificateState | undefined, CertificateState>;
  activated_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  /** When a retired certificate stops being accepted (end of the grace period). */
  retired_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

export interface SeriesTable {
  id: Generated<number>;
  device_id: number;
  name: string;
}

export interface PointTable {
  series_id: number;
  ts: Date;
  value: number;
}

/** Append-only: written in the transaction of the action it records. */
export interface AuditEventTable {
  id: ColumnType<string, never, never>;
  at: CreatedAt;
  action: string;
  actor: string;
  identity_id: number | null;
  psk_id: number | null;
  device_id: number | null;
  fingerprint: string | null;
  remote_address: string | null;
  details: ColumnType<Record<string, unknown>, string | undefined, never>;
}

export interface AdminTokenTable {
  id: Generated<number>;
  /** SHA-256 of the token; the token itself is shown once and never stored. */
  token_hash: Buffer;
  created_at: CreatedAt;
}

export interface Database {
  identities: IdentityTable;
  psks: PskTable;
  devices: DeviceTable;
  device_certificates: DeviceCertificateTable;
  series: SeriesTable;
  points: PointTable;
  audit_events: AuditEventTable;
  admin_tokens: AdminTokenTable;
}
