import { z } from 'zod';
import {
  listDevices,
  listFleetDevices,
  revokeDevice,
  showDevice,
} from '../devices/device.service.js';
import {
  adminRoute,
  fingerprintParam,
  identityNameParam,
  limitQuery,
  MAX_INT4,
} from './admin-route.js';
import { Device, DevicePage } from './response-schemas.js';

const deviceCursor = z
  .string()
  .regex(/^\d{1,10}$/)
  .refine((text) => Number(text) <= MAX_INT4, 'is out of range')
  .optional()
  .describe('nextCursor of the previous page');

export const deviceRoutes = [
  adminRoute({
    method: 'get',
    path: '/v1/identities/:name/devices',
    summary: "List an identity's devices: certificate, bound at, last seen, status",
    tag: 'devices',
    params: identityNameParam,
    query: z.object({
      limit: limitQuery(1000, 100),
      cursor: deviceCursor,
    }),
    response: DevicePage,
    responses: {
      200: '`{"devices": [Device], "nextCursor": string | null}`',
      404: 'no such identity',
    },
    async handle({ db }, { params, query }, _req, res) {
      res.json(
        await listDevices(db, params.name, {
          limit: query.limit,
          after: query.cursor === undefined ? undefined : Number(query.cursor),
        }),
      );
    },
  }),
  adminRoute({
    method: 'get',
    path: '/v1/devices',
    summary:
      'List every device of the fleet, whatever its identity, in binding order: paginated by cursor, optionally only active or revoked ones',
    tag: 'devices',
    query: z.object({
      limit: limitQuery(1000, 100),
      cursor: deviceCursor,
      status: z
        .enum(['active', 'revoked'])
        .optional()
        .describe('active: not revoked (a device of a disabled identity counts); revoked: revoked'),
    }),
    response: DevicePage,
    responses: { 200: '`{"devices": [Device], "nextCursor": string | null}`' },
    async handle({ db }, { query }, _req, res) {
      res.json(
        await listFleetDevices(db, {
          limit: query.limit,
          after: query.cursor === undefined ? undefined : Number(query.cursor),
          status: query.status,
        }),
      );
    },
  }),
  adminRoute({
    method: 'get',
    path: '/v1/devices/:fingerprint',
    summary: 'Show a device with all its certificates (current, pending, retired)',
    tag: 'devices',
    params: fingerprintParam,
    response: Device,
    responses: { 200: 'the Device', 404: 'no device has this certificate' },
    async handle({ db }, { params }, _req, res) {
      res.json(await showDevice(db, params.fingerprint));
    },
  }),
  adminRoute({
    method: 'post',
    path: '/v1/devices/:fingerprint/revoke',
    summary: 'Revoke a device, permanently: refused from its very next request',
    tag: 'devices',
    params: fingerprintParam,
    body: z
      .strictObject({ reason: z.string().max(500).optional().describe('kept in the audit log') })
      .optional(),
    response: Device,
    responses: { 200: 'the revoked Device', 404: 'no such device', 409: 'already revoked' },
    async handle({ db }, { params, body, actor }, _req, res) {
      res.json(await revokeDevice(db, params.fingerprint, body?.reason ?? null, actor));
    },
  }),
];
