import { z } from 'zod';
import {
  confirmRegistration,
  listPendingRegistrations,
} from '../registrations/registration.service.js';
import { adminRoute, identityNameParam } from './admin-route.js';
import { Registration, RegistrationList } from './response-schemas.js';

export const registrationRoutes = [
  adminRoute({
    method: 'get',
    path: '/v1/identities/:name/registrations',
    summary: "List an identity's registration requests waiting for the owner or the device",
    tag: 'registrations',
    params: identityNameParam,
    response: RegistrationList,
    responses: { 200: '`{"registrations": [Registration]}`', 404: 'no such identity' },
    async handle({ db }, { params }, _req, res) {
      res.json({ registrations: await listPendingRegistrations(db, params.name) });
    },
  }),
  adminRoute({
    method: 'post',
    path: '/v1/identities/:name/registrations/confirm',
    summary:
      "Confirm a device as its owner: the PIN it showed and the last 4 hex digits of its certificate's serial number",
    tag: 'registrations',
    params: identityNameParam,
    body: z.strictObject({
      pin: z.string().max(64).describe('the 8-character PIN the device showed'),
      serialLast4: z
        .string()
        .max(64)
        .describe("last 4 hex digits of the device certificate's serial number"),
    }),
    response: Registration,
    responses: {
      200: 'the Registration, now PENDING_DEVICE_COMPLETION',
      400: 'wrong_pin_or_serial (counted; the fifth revokes the request), invalid_pin, invalid_serial',
      404: 'no such identity',
      409: 'registration_already_confirmed, registration_revoked',
      410: 'registration_expired',
    },
    async handle({ db }, { params, body, actor }, _req, res) {
      res.json(await confirmRegistration(db, params.name, body.pin, body.serialLast4, actor));
    },
  }),
];
