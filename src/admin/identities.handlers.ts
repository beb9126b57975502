import { z } from 'zod';
import {
  createIdentity,
  listIdentities,
  setIdentityDeviceLimit,
  setIdentityDisabled,
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
    body: z.strictObject({ name: z.string(), maxDevices: maxDevices.optional() }),
    response: Identity,
    responses: { 201: 'the new Identity', 409: 'an identity of that name exists' },
    async handle({ db }, { body, actor }, _req, res) {
      await createIdentity(db, body.name, { maxDevices: body.maxDevices, actor });
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
    summary: "Change an identity's device limit (lowering it unbinds nobody)",
    tag: 'identities',
    params: identityNameParam,
    body: z.strictObject({ maxDevices }),
    response: Identity,
    responses: { 200: 'the updated Identity', 404: 'no such identity' },
    async handle({ db }, { params, body, actor }, _req, res) {
      res.json(await setIdentityDeviceLimit(db, params.name, body.maxDevices, actor));
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
