import { z } from 'zod';
import { cancelRotation, listRotations } from '../devices/rotation.service.js';
import { adminRoute, limitQuery } from './admin-route.js';
import { PendingRotation, PendingRotationPage } from './response-schemas.js';

const MAX_ID = 2_147_483_647;

export const rotationRoutes = [
  adminRoute({
    method: 'get',
    path: '/v1/rotations',
    summary:
      'List pending certificate rotations (key proven, not yet completed), oldest first; expired ones are dropped first',
    tag: 'devices',
    query: z.object({
      identity: z.string().optional().describe('only rotations of this identity'),
      limit: limitQuery(1000, 100),
      cursor: z
        .string()
        .regex(/^\d{1,10}$/)
        .refine((c) => Number(c) <= MAX_ID, 'out of range')
        .optional()
        .describe('nextCursor of the previous page'),
    }),
    response: PendingRotationPage,
    responses: {
      200: '`{"rotations": [PendingRotation], "nextCursor": string | null}`',
      404: 'no such identity',
    },
    async handle({ db }, { query }, _req, res) {
      res.json(
        await listRotations(db, {
          identity: query.identity,
          limit: query.limit,
          after: query.cursor === undefined ? undefined : Number(query.cursor),
        }),
      );
    },
  }),
  adminRoute({
    method: 'post',
    path: '/v1/rotations/:id/cancel',
    summary: "Cancel a pending rotation; the device's current certificate stays",
    tag: 'devices',
    params: z.object({ id: z.coerce.number().int().min(1).max(MAX_ID).describe('rotation id') }),
    body: z
      .strictObject({ reason: z.string().max(500).optional().describe('kept in the audit log') })
      .optional(),
    response: PendingRotation,
    responses: { 200: 'the cancelled PendingRotation', 404: 'no such pending rotation' },
    async handle({ db }, { params, body, actor }, _req, res) {
      res.json(await cancelRotation(db, params.id, body?.reason ?? null, actor));
    },
  }),
];
