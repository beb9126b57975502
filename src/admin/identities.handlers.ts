import { z } from 'zod';
import {
  createIdentity,
  listIdentities,
  setIdentityDeviceLimit,
  setIdentityDisabled,
  setIdentityRequireConfirmation,
  showIdentity,
} from '../identities/identity.service.js';
import { adminRoute, identityNameParam } from './admin-route.js';
import { Identity, IdentityList } from './response-schemas.js';

const maxDevices = z
  .number()
  .int()
  .min(1)
  .max(2_147_483_647)
  .nullable()
  .describe(
    'devices the identity may have bound at once (revoked ones do not count); null: no limit',
  );

const requireConfirmation = z
  .boolean()
  .describe(
    "new devices wait for their owner's confirmation with a PIN before they may upload (default false)",
  );

export const identityRoutes = [
  adminRoute({
    method: 'get',
    path: '/v1/identities',
    summary: 'List identities with their device counts and limits',
    tag: 'identities',
    response: IdentityList,
    responses: { 200: '`{"identities": [Identity]}`' },
    async handle({ db }, _input, _req, res) {
      res.json({ identities: await listIdentities(db) });
    },
  }),
  adminRoute({
    method: 'post',
    path: '/v1/identities',
    summary: 'Create an identity (a customer, an account)',
    tag: 'identities',
    body: z.strictObject({
      name: z.string(),
      maxDevices: maxDevices.optional(),
      requireConfirmation: requireConfirmation.optional(),
    }),
    response: Identity,
    responses: { 201: 'the new Identity', 409: 'an identity of that name exists' },
    async handle({ db }, { body, actor }, _req, res) {
      await createIdentity(db, body.name, {
        maxDevices: body.maxDevices,
        requireConfirmation: body.requireConfirmation,
        actor,
      });
      res.status(201).json(await showIdentity(db, body.name));
    },
  }),
  adminRoute({
    method: 'get',
    path: '/v1/identities/:name',
    summary: 'Show one identity: status, device count, limit',
    tag: 'identities',
    params: identityNameParam,
    response: Identity,
    responses: { 200: 'the Identity', 404: 'no such identity' },
    async handle({ db }, { params }, _req, res) {
      res.json(await showIdentity(db, params.name));
    },
  }),
  adminRoute({
    method: 'patch',
    path: '/v1/identities/:name',
    summary:
      "Change an identity's device limit (lowering it unbinds nobody) or whether new devices need their owner's confirmation",
    tag: 'identities',
    params: identityNameParam,
    body: z
      .strictObject({
        maxDevices: maxDevices.optional(),
        requireConfirmation: requireConfirmation.optional(),
      })
      .refine((b) => b.maxDevices !== undefined || b.requireConfirmation !== undefined, {
        message: 'give maxDevices, requireConfirmation, or both',
      }),
    response: Identity,
    responses: { 200: 'the updated Identity', 404: 'no such identity' },
    async handle({ db }, { params, body, actor }, _req, res) {
      if (body.maxDevices !== undefined) {
        await setIdentityDeviceLimit(db, params.name, body.maxDevices, actor);
      }
      if (body.requireConfirmation !== undefined) {
        await setIdentityRequireConfirmation(db, params.name, body.requireConfirmation, actor);
      }
      res.json(await showIdentity(db, params.name));
    },
  }),
  adminRoute({
    method: 'post',
    path: '/v1/identities/:name/disable',
    summary: 'Disable an identity: its devices and PSKs are refused until it is enabled',
    tag: 'identities',
    params: identityNameParam,
    response: Identity,
    responses: { 200: 'the updated Identity', 404: 'no such identity' },
    async handle({ db }, { params, actor }, _req, res) {
      res.json(await setIdentityDisabled(db, params.name, true, actor));
    },
  }),
  adminRoute({
    method: 'post',
    path: '/v1/identities/:name/enable',
    summary: 'Enable a disabled identity again',
    tag: 'identities',
    params: identityNameParam,
    response: Identity,
    responses: { 200: 'the updated Identity', 404: 'no such identity' },
    async handle({ db }, { params, actor }, _req, res) {
      res.json(await setIdentityDisabled(db, params.name, false, actor));
    },
  }),
];
