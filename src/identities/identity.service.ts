import type { Kysely } from 'kysely';
import { insertAuditEvent } from '../audit/audit.repository.js';
import { CLI_ACTOR, type Actor } from '../audit/actor.js';
import { AppError, badRequest, conflict, notFound } from '../http/app-error.js';
import { isUniqueViolation } from '../db/errors.js';
import type { Database } from '../db/schema.js';
import { emitDeviceEvent, type DeviceEvent } from '../devices/device-events.js';
import { notifyDeviceEvent } from '../devices/device-events.repository.js';
import {
  findIdentityByName,
  insertIdentity,
  listIdentitiesWithCounts,
  liveDeviceIdsOfIdentity,
  updateIdentity,
  type IdentityCounts,
  type IdentityRow,
} from './identity.repository.js';

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$/;

export function assertIdentityName(name: string): void {
  if (!NAME_PATTERN.test(name)) {
    throw badRequest(
      'invalid_identity_name',
      'identity names are 1-128 characters: letters, digits, and _ . @ - (not first)',
    );
  }
}

export function assertDeviceLimit(maxDevices: number | null | undefined): void {
  if (maxDevices === null || maxDevices === undefined) return;
  if (!Number.isInteger(maxDevices) || maxDevices < 1 || maxDevices > 2_147_483_647) {
    throw badRequest('invalid_max_devices', 'max devices must be a positive integer');
  }
}

export interface IdentityView {
  name: string;
  createdAt: Date;
  disabledAt: Date | null;
  status: 'active' | 'disabled';
  /** Null: no limit. */
  maxDevices: number | null;
  /** New devices wait for their owner's confirmation with a PIN (issue 12). */
  requireConfirmation: boolean;
  /** Devices bound and not revoked: what counts against maxDevices. */
  devices: number;
  revokedDevices: number;
  psks: number;
}

export interface CreateIdentityOptions {
  maxDevices?: number | null;
  /** New devices wait for their owner's PIN; off by default. */
  requireConfirmation?: boolean;
  /** Who asks, for the audit log; the CLI when not said. */
  actor?: Actor;
}

export async function createIdentity(
  db: Kysely<Database>,
  name: string,
  options: CreateIdentityOptions = {},
): Promise<IdentityRow> {
  const actor = options.actor ?? CLI_ACTOR;
  assertIdentityName(name);
  assertDeviceLimit(options.maxDevices);
  try {
    return await db.transaction().execute(async (trx) => {
      const created = await insertIdentity(
        trx,
        name,
        options.maxDevices ?? null,
        options.requireConfirmation ?? false,
      );
      await audit(trx, 'identity.created', created, actor, {
        maxDevices: created.max_devices,
        requireConfirmation: created.require_confirmation,
      });
      return created;
    });
  } catch (err) {
    if (isUniqueViolation(err))
      throw conflict('identity_exists', `identity ${name} already exists`);
    throw err;
  }
}

export async function requireIdentity(db: Kysely<Database>, name: string): Promise<IdentityRow> {
  const identity = await findIdentityByName(db, name);
  if (!identity) throw notFound('identity_not_found', `no identity named ${name}`);
  return identity;
}

export async function listIdentities(db: Kysely<Database>): Promise<IdentityView[]> {
  return (await listIdentitiesWithCounts(db)).map(identityView);
}

export async function showIdentity(db: Kysely<Database>, name: string): Promise<IdentityView> {
  const [row] = await listIdentitiesWithCounts(db, name);
  if (!row) throw notFound('identity_not_found', `no identity named ${name}`);
  return identityView(row);
}

/**
 * Disabling is reversible: the identity's devices and PSKs are refused while
 * it lasts (device auth and binding check it on every request), and its
 * devices' WebSocket and MQTT sessions are closed on every node.
 */
export async function setIdentityDisabled(
  db: Kysely<Database>,
  name: string,
  disabled: boolean,
  actor: Actor,
): Promise<IdentityView> {
  const news = await db.transaction().execute(async (trx) => {
    const identity = await requireIdentity(trx, name);
    if ((identity.disabled_at !== null) === disabled) return undefined;
    const updated = await updateIdentity(trx, identity.id, {
      disabled_at: disabled ? new Date() : null,
    });
    await audit(trx, disabled ? 'identity.disabled' : 'identity.enabled', updated, actor);
    if (!disabled) return undefined;
    // Its devices' long-lived sessions on every node are closed at once.
    const silenced: DeviceEvent = {
      event: 'identity_disabled',
      deviceIds: await liveDeviceIdsOfIdentity(trx, identity.id),
    };
    await notifyDeviceEvent(trx, silenced);
    return silenced;
  });
  if (news) emitDeviceEvent(news);
  return showIdentity(db, name);
}

/** A lower limit than the devices already bound stops new binds; it unbinds nobody. */
export async function setIdentityDeviceLimit(
  db: Kysely<Database>,
  name: string,
  maxDevices: number | null,
  actor: Actor,
): Promise<IdentityView> {
  assertDeviceLimit(maxDevices);
  await db.transaction().execute(async (trx) => {
    const identity = await requireIdentity(trx, name);
    const updated = await updateIdentity(trx, identity.id, { max_devices: maxDevices });
    await audit(trx, 'identity.updated', updated, actor, { maxDevices });
  });
  return showIdentity(db, name);
}

/**
 * Turns owner confirmation on or off for devices that bind or enroll from now
 * on; devices already active stay active.
 */
export async function setIdentityRequireConfirmation(
  db: Kysely<Database>,
  name: string,
  requireConfirmation: boolean,
  actor: Actor,
): Promise<IdentityView> {
  await db.transaction().execute(async (trx) => {
    const identity = await requireIdentity(trx, name);
    if (identity.require_confirmation === requireConfirmation) return;
    const updated = await updateIdentity(trx, identity.id, {
      require_confirmation: requireConfirmation,
    });
    await audit(trx, 'identity.updated', updated, actor, { requireConfirmation });
  });
  return showIdentity(db, name);
}

function audit(
  db: Kysely<Database>,
  action: string,
  identity: IdentityRow,
  actor: Actor,
  details: Record<string, unknown> = {},
) {
  return insertAuditEvent(db, {
    action,
    actor: actor.kind,
    identityId: identity.id,
    remoteAddress: actor.remoteAddress,
    details,
  });
}

function identityView(row: IdentityCounts): IdentityView {
  return {
    name: row.name,
    createdAt: row.created_at,
    disabledAt: row.disabled_at,
    status: row.disabled_at ? 'disabled' : 'active',
    maxDevices: row.max_devices,
    requireConfirmation: row.require_confirmation,
    devices: row.devices,
    revokedDevices: row.revokedDevices,
    psks: row.psks,
  };
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}
