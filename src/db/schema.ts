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
  /** New devices stay pending until the owner confirms them with a PIN (issue 12). */
  require_confirmation: ColumnType<boolean, boolean | undefined, boolean>;
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
  /** The PSK it bound with; null for a device enrolled by certificate chain. */
  psk_id: number | null;
  /** Fingerprint of the trusted CA that admitted a device enrolled by certificate chain. */
  enrolled_by_ca: ColumnType<string | null, string | null | undefined, string | null>;
  bound_at: CreatedAt;
  bound_from: string | null;
  last_seen_at: Date | null;
  revoked_at: Date | null;
  revoked_reason: ColumnType<string | null, string | null | undefined, string | null>;
  /** Waiting for its owner's confirmation: known, but refused until registered. */
  pending_confirmation: ColumnType<boolean, boolean | undefined, boolean>;
  /** The last server time (epoch ms) given to a message of it without `ts` (takeServerTime). */
  last_server_time_ms: ColumnType<string | null, number | null | undefined, number | null>;
}

export type CertificateState = 'active' | 'retired';

/**
 * Keeps a fingerprint unique across every device: device_certificates is keyed
 * by (fingerprint, device_id), as a table distributed by device must be.
 */
export interface CertificateFingerprintTable {
  fingerprint: string;
  device_id: number;
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
  state: ColumnType<CertificateState, CertificateState | undefined, CertificateState>;
  activated_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  /** When a retired certificate stops being accepted (end of the grace period). */
  retired_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

/** A single-use server challenge for a rotation; one outstanding per device. */
export interface RotationChallengeTable {
  device_id: number;
  /** SHA-256 of the challenge text. */
  challenge_hash: Buffer;
  /** Fingerprint of the certificate it was issued to. */
  presented_by: string;
  issued_at: ColumnType<Date, Date | undefined, Date>;
  expires_at: Date;
}

/**
 * A certificate whose key was proven for a rotation, waiting for the device to
 * present it with the completion secret. Not a certificate of the device yet.
 */
export interface PendingRotationTable {
  id: Generated<number>;
  device_id: number;
  fingerprint: string;
  subject: string;
  issuer: string;
  serial_number: string;
  not_before: Date;
  not_after: Date;
  /** Fingerprint of the certificate that requested the rotation. */
  replaces: string;
  /** SHA-256 of the completion secret; the secret is shown once to the device. */
  completion_hash: Buffer;
  requested_at: CreatedAt;
  expires_at: Date;
}

export type RegistrationStatus =
  'PENDING_USER_CONFIRMATION' | 'PENDING_DEVICE_COMPLETION' | 'REGISTERED' | 'EXPIRED' | 'REVOKED';

/** A request to register a device that its owner must confirm with a PIN. */
export interface RegistrationTable {
  device_id: number;
  rid: string;
  identity_id: number;
  fingerprint: string;
  /** Last 4 hex digits of the certificate's serial number, lower case. */
  serial_last4: string;
  /** SHA-256 of `rid:PIN`; the PIN is shown once to the device. */
  pin_hash: Buffer;
  /** SHA-256 of the nonce; the nonce is shown once to the device. */
  nonce_hash: Buffer;
  status: RegistrationStatus;
  failed_attempts: ColumnType<number, number | undefined, number>;
  requested_at: CreatedAt;
  requested_from: string | null;
  expires_at: Date;
  confirmed_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  confirmed_by: ColumnType<string | null, string | null | undefined, string | null>;
  confirmed_from: ColumnType<string | null, string | null | undefined, string | null>;
  completed_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  ended_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  ended_reason: ColumnType<string | null, string | null | undefined, string | null>;
}

/** A CA trusted by one identity: devices whose chain ends at it enroll without a PSK. */
export interface CertificateAuthorityTable {
  id: Generated<number>;
  identity_id: number;
  fingerprint: string;
  subject: string;
  issuer: string;
  not_before: Date;
  not_after: Date;
  certificate_pem: string;
  name_from: ColumnType<'cn', 'cn' | undefined, 'cn'>;
  crl_this_update: ColumnType<Date | null, Date | null | undefined, Date | null>;
  crl_next_update: ColumnType<Date | null, Date | null | undefined, Date | null>;
  added_at: CreatedAt;
}

export interface CaRevokedSerialTable {
  ca_id: number;
  /** Lowercase hex, no leading zeros (as certificate-info reports serials). */
  serial_number: string;
  revoked_at: Date;
}

/** Serials in the chain of a device enrolled by CA, with the registered CA that issued each (checked per request against CRLs). */
export interface DeviceChainSerialTable {
  device_id: number;
  /** The device certificate whose chain it is. */
  fingerprint: string;
  ca_id: number;
  /** Lowercase hex, no leading zeros, as in ca_revoked_serials. */
  serial_number: string;
}

export type DeviceNameStatus = 'provisioned' | 'active';

export interface DeviceNameTable {
  identity_id: number;
  name: string;
  status: DeviceNameStatus;
  preregistered: ColumnType<boolean, boolean | undefined, boolean>;
  device_id: number | null;
  created_at: CreatedAt;
}

export interface SeriesTable {
  id: Generated<number>;
  device_id: number;
  name: string;
}

export interface PointTable {
  /** The distribution column on Citus; the series' device. */
  device_id: number;
  series_id: number;
  ts: Date;
  value: number;
}

/** The last state a device published on MQTT (issue 13); one row per device. */
export interface DeviceStateTable {
  device_id: number;
  status: string;
  state: ColumnType<Record<string, unknown>, string, string>;
  reported_at: ColumnType<Date, Date | undefined, Date>;
}

/** Append-only: written in the transaction of the action it records. */
export interface AuditEventTable {
  id: ColumnType<string, never, never>;
  at: CreatedAt;
  action: string;
  actor: string;
  identity_id: number | null;
  psk_id: number | null;
  /** 0 for an event of no device (a distribution column is never NULL). */
  device_id: number;
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
  certificate_fingerprints: CertificateFingerprintTable;
  rotation_challenges: RotationChallengeTable;
  pending_rotations: PendingRotationTable;
  certificate_authorities: CertificateAuthorityTable;
  ca_revoked_serials: CaRevokedSerialTable;
  device_names: DeviceNameTable;
  device_chain_serials: DeviceChainSerialTable;
  registrations: RegistrationTable;
  series: SeriesTable;
  points: PointTable;
  audit_events: AuditEventTable;
  admin_tokens: AdminTokenTable;
  device_states: DeviceStateTable;
  throttle_buckets: ThrottleBucketTable;
  tls_sessions: TlsSessionTable;
  tls_ticket_keys: TlsTicketKeyTable;
  proxy_trust_key: ProxyTrustKeyTable;
}

/** The key of the CA digest nginx forwards with its chain verdict (one row). */
export interface ProxyTrustKeyTable {
  id: Generated<number>;
  key: Buffer;
  created_at: CreatedAt;
}

/** One token bucket of a throttle (UNLOGGED, shared by every node). */
export interface ThrottleBucketTable {
  bucket: string;
  key: string;
  device_id: number | null;
  tokens: number;
  taken: boolean;
  updated_at: Date;
}

/** A TLS session for resumption by session ID (UNLOGGED, shared by every node). */
export interface TlsSessionTable {
  session_id: Buffer;
  session: Buffer;
  expires_at: Date;
}

/** Session ticket keys in nginx's 48-byte layout; the newest encrypts. */
export interface TlsTicketKeyTable {
  id: Generated<number>;
  key: Buffer;
  created_at: CreatedAt;
}
