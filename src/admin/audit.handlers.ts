import { z } from 'zod';
import { AUDIT_ACTIONS, readAuditLog } from '../audit/audit.service.js';
import { AuditPage } from './response-schemas.js';
import { adminRoute, bigintCursor, limitQuery } from './admin-route.js';

export const auditRoutes = [
  adminRoute({
    method: 'get',
    path: '/v1/audit',
    summary: 'Read the audit log, newest first: binds, refused binds, rotations, revocations',
    tag: 'audit',
    query: z.object({
      identity: z.string().optional().describe('only events of this identity'),
      fingerprint: z
        .string()
        .optional()
        .describe('only events of the device with this certificate'),
      action: z.enum(AUDIT_ACTIONS).optional(),
      limit: limitQuery(1000, 100),
      cursor: bigintCursor.optional().describe('nextCursor of the previous page'),
    }),
    response: AuditPage,
    responses: { 200: '`{"events": [AuditEvent], "nextCursor": string | null}`' },
    async handle({ db }, { query }, _req, res) {
      res.json(
        await readAuditLog(db, {
          identity: query.identity,
          fingerprint: query.fingerprint,
          action: query.action,
          before: query.cursor,
          limit: query.limit,
        }),
      );
    },
  }),
];
