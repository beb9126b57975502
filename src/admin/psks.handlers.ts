import { z } from 'zod';
import { parseDuration } from '../psks/duration.js';
import { issuePsk, listPsks, revokePsk } from '../psks/psk.service.js';
import { adminRoute, identityNameParam, rowIdParam } from './admin-route.js';
import { IssuedPsk, Psk, PskList } from './response-schemas.js';

export const pskRoutes = [
  adminRoute({
    method: 'get',
    path: '/v1/identities/:name/psks',
    summary: "List an identity's PSKs (never the secret: id, prefix, uses, limit, expiry)",
    tag: 'psks',
    params: identityNameParam,
    response: PskList,
    responses: { 200: '`{"psks": [Psk]}`', 404: 'no such identity' },
    async handle({ db }, { params }, _req, res) {
      res.json({ psks: await listPsks(db, params.name) });
    },
  }),
  adminRoute({
    method: 'post',
    path: '/v1/identities/:name/psks',
    summary: 'Issue a PSK; the secret is in this answer only and is never shown again',
    tag: 'psks',
    params: identityNameParam,
    body: z
      .strictObject({
        maxDevices: z.number().int().min(1).optional().describe('devices this PSK may bind'),
        expiresIn: z.string().optional().describe('lifetime such as 90s, 15m, 12h, 30d, 2w'),
        singleUse: z.boolean().optional().describe('binds exactly one device'),
      })
      .optional(),
    response: IssuedPsk,
    responses: { 201: '`{"secret": "fgpsk_...", "psk": Psk}`', 404: 'no such identity' },
    async handle({ db }, { params, body, actor }, _req, res) {
      const issued = await issuePsk(db, params.name, {
        actor,
        maxDevices: body?.maxDevices,
        expiresInMs: body?.expiresIn === undefined ? undefined : parseDuration(body.expiresIn),
        singleUse: body?.singleUse,
      });
      res.setHeader('Cache-Control', 'no-store');
      res.status(201).json(issued);
    },
  }),
  adminRoute({
    method: 'post',
    path: '/v1/psks/:id/revoke',
    summary: 'Revoke a PSK; devices already bound with it keep working',
    tag: 'psks',
    params: z.object({ id: rowIdParam('PSK id') }),
    response: Psk,
    responses: { 200: 'the revoked Psk', 404: 'no such PSK', 409: 'already revoked' },
    async handle({ db }, { params, actor }, _req, res) {
      res.json(await revokePsk(db, params.id, actor));
    },
  }),
];
