import type { ColumnType, Generated } from 'kysely';

/** One interface per table; the Database type below is what kysely sees. */
type CreatedAt = ColumnType<Date, Date | undefined, never>;

export interface IdentityTable {
  id: Generated<number>;
  name: string;
  created_at: CreatedAt;
  disabled_at: Date | null;
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
}

export interface DeviceCertificateTable {
  fingerprint: string;
  device_id: number;
  subject: string;
  issuer: string;
  serial_number: string;
  not_before: Date;
  not_after: Date;
  added_at: CreatedAt;
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

export interface Database {
  identities: IdentityTable;
  psks: PskTable;
  devices: DeviceTable;
  device_certificates: DeviceCertificateTable;
  series: SeriesTable;
  points: PointTable;
}
