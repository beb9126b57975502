import type { Writable } from 'node:stream';
import type { Kysely } from 'kysely';
import { resetAdminToken } from '../admin/admin-token.service.js';
import { CLI_ACTOR } from '../audit/actor.js';
import { readAuditLog } from '../audit/audit.service.js';
import type { Database } from '../db/schema.js';
import { migrateToLatest } from '../db/migrate.js';
import {
  listDevices,
  listFleetDevices,
  revokeDevice,
  showDevice,
  type DeviceView,
} from '../devices/device.service.js';
import {
  cancelRotation,
  listRotations,
  type PendingRotationView,
} from '../devices/rotation.service.js';
import { badRequest } from '../http/app-error.js';
import {
  createIdentity,
  listIdentities,
  setIdentityDeviceLimit,
  setIdentityDisabled,
  setIdentityRequireConfirmation,
  showIdentity,
} from '../identities/identity.service.js';
import {
  confirmRegistration,
  listPendingRegistrations,
} from '../registrations/registration.service.js';
import { exportSeries } from '../ingest/export.service.js';
import { parseDuration } from '../psks/duration.js';
import { issuePsk, listPsks, revokePsk } from '../psks/psk.service.js';
import { applyRetention, retentionPlan } from '../retention/retention.service.js';
import {
  listAuthorities,
  loadCrl,
  removeAuthority,
  deviceTrustBundle,
  trustAuthority,
} from '../authorities/authority.service.js';
import { replaceDeviceCertificate } from '../authorities/replace-certificate.service.js';
import { preregisterDevices } from '../authorities/preregistration.service.js';
import { dataCommands } from './data-commands.js';
import { dbExport } from './db-commands.js';
import { progressBar } from './progress.js';
import {
  auditRows,
  authorityRows,
  deviceDetails,
  deviceRows,
  identityDetails,
  identityRows,
  registrationRows,
  pskRows,
  rotationRows,
  retentionReport,
} from './views.js';
import { printAs, writeOut } from './output.js';

/**
 * `--json` prints exactly the body the admin API answers for the same
 * question (`{"identities": [...]}`, `{"psks": [...]}`, a device page...).
 *
 * Admin actions, written once and run either in the CLI's own process or,
 * when an embedded-database server holds the data directory, inside that
 * server over its control socket. Arguments are plain JSON so both work.
 */
export type AdminArgs = Record<string, string | number | boolean | undefined>;
export type AdminCommand = (db: Kysely<Database>, args: AdminArgs, out: Writable) => Promise<void>;

export { writeOut };

const str = (args: AdminArgs, key: string) => String(args[key] ?? '');
const optionalNumber = (args: AdminArgs, key: string) =>
  args[key] === undefined ? undefined : Number(args[key]);
const show = (out: Writable, args: AdminArgs, value: unknown, human: () => string) =>
  printAs(out, args.json === true, value, human);

export const adminCommands: Record<string, AdminCommand> = {
  async migrate(db, _args, out) {
    const results = await migrateToLatest(db as Kysely<unknown>);
    const applied = results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
    await writeOut(
      out,
      applied.length ? `applied: ${applied.join(', ')}\n` : 'schema is up to date\n',
    );
  },

  async 'identity.create'(db, args, out) {
    const identity = await createIdentity(db, str(args, 'name'), {
      actor: CLI_ACTOR,
      maxDevices: optionalNumber(args, 'maxDevices'),
      requireConfirmation: args.requireConfirmation === true,
    });
    await writeOut(out, `created identity ${identity.name}\n`);
  },

  async 'identity.set'(db, args, out) {
    const identity = await setIdentityRequireConfirmation(
      db,
      str(args, 'name'),
      args.requireConfirmation === true,
      CLI_ACTOR,
    );
    await writeOut(
      out,
      `identity ${identity.name}: require confirmation ${identity.requireConfirmation ? 'on' : 'off'}\n`,
    );
  },

  async 'registration.list'(db, args, out) {
    const registrations = await listPendingRegistrations(db, str(args, 'identity'));
    await show(out, args, { registrations }, () => registrationRows(registrations));
  },

  async 'registration.confirm'(db, args, out) {
    const confirmed = await confirmRegistration(
      db,
      str(args, 'identity'),
      str(args, 'pin'),
      str(args, 'serial4'),
      CLI_ACTOR,
    );
    await writeOut(
      out,
      `confirmed registration ${confirmed.rid} of device ${confirmed.deviceId} (${confirmed.fingerprint}); the device completes it now\n`,
    );
  },

  async 'identity.list'(db, args, out) {
    const identities = await listIdentities(db);
    await show(out, args, { identities }, () => identityRows(identities));
  },

  async 'identity.show'(db, args, out) {
    const identity = await showIdentity(db, str(args, 'name'));
    await show(out, args, identity, () => identityDetails(identity));
  },

  async 'identity.disable'(db, args, out) {
    await setIdentityDisabled(db, str(args, 'name'), true, CLI_ACTOR);
    await writeOut(out, `disabled identity ${str(args, 'name')}\n`);
  },

  async 'identity.enable'(db, args, out) {
    await setIdentityDisabled(db, str(args, 'name'), false, CLI_ACTOR);
    await writeOut(out, `enabled identity ${str(args, 'name')}\n`);
  },

  async 'identity.limit'(db, args, out) {
    const limit = str(args, 'maxDevices');
    const maxDevices = limit === 'none' ? null : Number(limit);
    if (maxDevices !== null && !Number.isInteger(maxDevices)) {
      throw badRequest('invalid_max_devices', 'the limit is a positive integer or "none"');
    }
    const identity = await setIdentityDeviceLimit(db, str(args, 'name'), maxDevices, CLI_ACTOR);
    await writeOut(
      out,
      `identity ${identity.name}: max devices ${identity.maxDevices ?? 'none'}\n`,
    );
  },

  async 'psk.issue'(db, args, out) {
    const { secret } = await issuePsk(db, str(args, 'identity'), {
      actor: CLI_ACTOR,
      maxDevices: optionalNumber(args, 'maxDevices'),
      expiresInMs: args.expiresIn === undefined ? undefined : parseDuration(str(args, 'expiresIn')),
      singleUse: args.singleUse === true,
    });
    await writeOut(out, `${secret}\n`);
  },

  async 'psk.list'(db, args, out) {
    const psks = await listPsks(db, str(args, 'identity'));
    await show(out, args, { psks }, () => pskRows(psks));
  },

  async 'psk.revoke'(db, args, out) {
    const psk = await revokePsk(db, Number(args.id), CLI_ACTOR);
    await writeOut(out, `revoked PSK ${psk.id} (${psk.prefix}...) of ${psk.identity}\n`);
  },

  async 'devices.list'(db, args, out) {
    // All pages: the CLI prints the whole list, a page at a time.
    let after: number | undefined;
    const all: DeviceView[] = [];
    do {
      const page =
        args.identity === undefined
          ? await listFleetDevices(db, { limit: 1000, after })
          : await listDevices(db, str(args, 'identity'), { limit: 1000, after });
      all.push(...page.devices);
      after = page.nextCursor === null ? undefined : Number(page.nextCursor);
    } while (after !== undefined);
    // The API's page shape; the CLI read every page, so there is no next one.
    await show(out, args, { devices: all, nextCursor: null }, () =>
      deviceRows(all, args.identity === undefined),
    );
  },

  async 'device.show'(db, args, out) {
    const device = await showDevice(db, str(args, 'fingerprint'));
    await show(out, args, device, () => deviceDetails(device));
  },

  async 'device.revoke'(db, args, out) {
    const reason = args.reason === undefined ? null : str(args, 'reason');
    const device = await revokeDevice(db, str(args, 'fingerprint'), reason, CLI_ACTOR);
    await writeOut(out, `revoked device ${device.id} of ${device.identity}\n`);
  },

  async 'rotations.list'(db, args, out) {
    let after: number | undefined;
    const all: PendingRotationView[] = [];
    do {
      const page = await listRotations(db, {
        identity: args.identity === undefined ? undefined : str(args, 'identity'),
        limit: 1000,
        after,
      });
      all.push(...page.rotations);
      after = page.nextCursor === null ? undefined : Number(page.nextCursor);
    } while (after !== undefined);
    await show(out, args, all, () => rotationRows(all));
  },

  async 'rotation.cancel'(db, args, out) {
    const reason = args.reason === undefined ? null : str(args, 'reason');
    const rotation = await cancelRotation(db, Number(args.id), reason, CLI_ACTOR);
    await writeOut(
      out,
      `cancelled rotation ${rotation.id} of device ${rotation.deviceId} (${rotation.identity}) to ${rotation.fingerprint}\n`,
    );
  },

  async audit(db, args, out) {
    const page = await readAuditLog(db, {
      identity: args.identity === undefined ? undefined : str(args, 'identity'),
      fingerprint: args.fingerprint === undefined ? undefined : str(args, 'fingerprint'),
      action: args.action === undefined ? undefined : str(args, 'action'),
      limit: optionalNumber(args, 'limit') ?? 100,
    });
    await show(out, args, page, () => auditRows(page.events));
  },

  async 'ca.trust'(db, args, out) {
    const { status, authority } = await trustAuthority(
      db,
      str(args, 'identity'),
      str(args, 'pem'),
      CLI_ACTOR,
    );
    await writeOut(
      out,
      `${status === 'trusted' ? 'trusted' : 'already trusted'} CA ${authority.fingerprint} (${authority.subject}) for ${authority.identity}\n`,
    );
  },

  async 'ca.list'(db, args, out) {
    const authorities = await listAuthorities(db, str(args, 'identity'));
    await show(out, args, authorities, () => authorityRows(authorities));
  },

  async 'ca.remove'(db, args, out) {
    const authority = await removeAuthority(
      db,
      str(args, 'identity'),
      str(args, 'fingerprint'),
      CLI_ACTOR,
    );
    await writeOut(out, `removed CA ${authority.fingerprint} of ${authority.identity}\n`);
  },

  /** Every registered CA as PEM with its keyed digest, as JSON (for `fleetgate nginx-config`, which renders nginx's trust bundle). */
  async 'ca.bundle'(db, _args, out) {
    await writeOut(out, `${JSON.stringify(await deviceTrustBundle(db))}\n`);
  },

  async 'ca.crl'(db, args, out) {
    const { authority, revokedSerials } = await loadCrl(
      db,
      str(args, 'identity'),
      str(args, 'crl'),
      CLI_ACTOR,
    );
    await writeOut(
      out,
      `loaded CRL of ${authority.subject}: ${revokedSerials} revoked serial(s)\n`,
    );
  },

  async 'devices.preregister'(db, args, out) {
    const macs = str(args, 'macs').split('\n').filter(Boolean);
    const result = await preregisterDevices(db, str(args, 'identity'), macs, CLI_ACTOR, {
      caFingerprint: args.caFingerprint === undefined ? undefined : str(args, 'caFingerprint'),
      batch: args.batch === undefined ? undefined : str(args, 'batch'),
    });
    if (args.quiet !== true) {
      await writeOut(
        out,
        `pre-registered ${result.created.length}, existing ${result.existing.length}\n`,
      );
    }
  },

  async 'device.replace-cert'(db, args, out) {
    const result = await replaceDeviceCertificate(
      db,
      str(args, 'fingerprint'),
      str(args, 'pem'),
      CLI_ACTOR,
    );
    await writeOut(
      out,
      `device ${result.deviceId} of ${result.identity} now uses ${result.fingerprint}; its other certificates are retired\n`,
    );
  },

  async 'admin-token.reset'(db, _args, out) {
    const token = await resetAdminToken(db, CLI_ACTOR);
    await writeOut(out, `${token}\n`);
  },

  /** Shows what would go; empties it only with --yes. */
  async retention(db, args, out) {
    const olderThanMs = parseDuration(str(args, 'olderThan'));
    const progress = progressBar(out, args.json === true, 'retention', 'points');
    let plan;
    try {
      plan =
        args.yes === true
          ? await applyRetention(db, olderThanMs, CLI_ACTOR, progress)
          : (await retentionPlan(db, olderThanMs)).plan;
    } finally {
      progress.stop();
    }
    await show(out, args, plan, () => retentionReport(plan));
  },

  async export(db, args, out) {
    const progress = progressBar(out, false, 'export', 'points');
    let points = 0;
    try {
      for await (const chunk of exportSeries(db, str(args, 'fingerprint'), str(args, 'series'))) {
        await writeOut(out, chunk);
        for (let i = chunk.indexOf('\n'); i !== -1; i = chunk.indexOf('\n', i + 1)) points += 1;
        progress.update(points);
      }
    } finally {
      progress.stop();
    }
  },

  'db.export': dbExport,

  ...dataCommands,
};
