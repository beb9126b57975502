import { z } from 'zod';
import {
  listAuthorities,
  loadCrl,
  removeAuthority,
  trustAuthority,
} from '../authorities/authority.service.js';
import { replaceDeviceCertificate } from '../authorities/replace-certificate.service.js';
import { showDevice } from '../devices/device.service.js';
import { adminRoute } from './admin-route.js';
import { Device, time } from './response-schemas.js';

const Authority = z
  .object({
    fingerprint: z.string().describe('SHA-256 of the CA certificate (DER), lowercase hex'),
    identity: z.string(),
    subject: z.string(),
    issuer: z.string(),
    notBefore: time,
    notAfter: time,
    nameFrom: z.literal('cn').describe("enrolled devices are named by their certificate's CN"),
    addedAt: time,
    crlThisUpdate: time.nullable(),
    crlNextUpdate: time.nullable(),
    revokedSerials: z.number().int().describe('serials revoked by the loaded CRL'),
    certificatePem: z.string(),
  })
  .meta({ id: 'CertificateAuthority' });

const identityParam = z.object({ name: z.string().describe('identity name') });
const caParam = identityParam.extend({
  caFingerprint: z.string().describe('SHA-256 fingerprint of the CA certificate, 64 hex digits'),
});

/** Listed before the device routes: the OpenAPI answer test revokes the device last. */
export const replaceCertificateRoute = adminRoute({
  method: 'post',
  path: '/v1/devices/:fingerprint/replace-cert',
  summary:
    "An admin's explicit renewal: the certificate becomes the device's, its others retire now; the device and its data stay",
  tag: 'devices',
  params: z.object({
    fingerprint: z.string().describe('SHA-256 fingerprint of any certificate of the device'),
  }),
  body: z.strictObject({ certificate: z.string().describe('the new device certificate, PEM') }),
  response: Device,
  responses: {
    200: 'the Device with its new certificate',
    400: '`malformed_certificate`, `unacceptable_certificate`, `device_name_mismatch`',
    404: 'no such device',
    409: '`device_revoked`, `certificate_known`',
  },
  async handle({ db }, { params, body, actor }, _req, res) {
    const result = await replaceDeviceCertificate(db, params.fingerprint, body.certificate, actor);
    res.json(await showDevice(db, result.fingerprint));
  },
});

export const authorityRoutes = [
  adminRoute({
    method: 'get',
    path: '/v1/identities/:name/cas',
    summary: "List an identity's trusted certificate authorities",
    tag: 'certificate authorities',
    params: identityParam,
    response: z.object({ cas: z.array(Authority) }),
    responses: { 200: '`{"cas": [CertificateAuthority]}`', 404: 'no such identity' },
    async handle({ db }, { params }, _req, res) {
      res.json({ cas: await listAuthorities(db, params.name) });
    },
  }),
  adminRoute({
    method: 'post',
    path: '/v1/identities/:name/cas',
    summary:
      'Trust a CA certificate (root or intermediate, PEM): devices chained to it enroll without a PSK',
    tag: 'certificate authorities',
    params: identityParam,
    body: z.strictObject({ certificate: z.string().describe('the CA certificate, PEM') }),
    response: z.object({ status: z.enum(['trusted', 'exists']), ca: Authority }),
    responses: {
      201: 'trusted',
      200: 'already trusted by this identity: nothing changed',
      400: 'not a CA certificate (`not_a_ca_certificate`, `invalid_ca_certificate`, `ca_certificate_expired`)',
      404: 'no such identity',
      409: '`ca_belongs_to_other_identity`',
    },
    async handle({ db }, { params, body, actor }, _req, res) {
      const result = await trustAuthority(db, params.name, body.certificate, actor);
      res
        .status(result.status === 'trusted' ? 201 : 200)
        .json({ status: result.status, ca: result.authority });
    },
  }),
  adminRoute({
    method: 'post',
    path: '/v1/identities/:name/crls',
    summary: "Load a CRL (PEM) of one of the identity's CAs; it replaces that CA's previous CRL",
    tag: 'certificate authorities',
    params: identityParam,
    body: z.strictObject({ crl: z.string().describe('the CRL, PEM') }),
    response: z.object({ ca: Authority, revokedSerials: z.number().int() }),
    responses: {
      200: 'loaded',
      400: '`invalid_crl`, `crl_issuer_unknown`',
      409: '`crl_outdated`: a newer CRL is loaded',
    },
    async handle({ db }, { params, body, actor }, _req, res) {
      const result = await loadCrl(db, params.name, body.crl, actor);
      res.json({ ca: result.authority, revokedSerials: result.revokedSerials });
    },
  }),
  adminRoute({
    method: 'post',
    path: '/v1/identities/:name/cas/:caFingerprint/remove',
    summary: 'Stop trusting a CA (devices it enrolled keep working)',
    tag: 'certificate authorities',
    params: caParam,
    response: Authority,
    responses: {
      200: 'the removed CertificateAuthority',
      404: '`ca_not_found`',
      409: '`ca_belongs_to_other_identity`',
    },
    async handle({ db }, { params, actor }, _req, res) {
      res.json(await removeAuthority(db, params.name, params.caFingerprint, actor));
    },
  }),
];
