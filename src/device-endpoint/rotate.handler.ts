import type { Request, Response } from 'express';
import type { Kysely } from 'kysely';
import type { Config } from '../config/config.js';
import type { Database } from '../db/schema.js';
import { requireActiveDevice } from '../devices/device-auth.js';
import {
  completeRotation,
  issueRotationChallenge,
  requestRotation,
  type RotationProof,
  type RotationSettings,
} from '../devices/rotation.service.js';
import { badRequest } from '../http/app-error.js';
import { clientAddressOf } from '../proxy/request-origin.js';
import { requireClientCertificate } from '../tls/client-certificate.js';

export const CHALLENGE_HEADER = 'x-rotation-challenge';
export const SIGNATURE_HEADER = 'x-rotation-signature';

const settingsOf = (config: Config): RotationSettings => ({
  graceMs: config.rotationGraceMs,
  pendingTtlMs: config.rotationPendingTtlMs,
});

/** POST /device_endpoint/rotate/challenge, with the current certificate: a single-use challenge. */
export async function handleRotationChallenge(db: Kysely<Database>, req: Request, res: Response) {
  const current = await requireActiveDevice(db, req);
  const { challenge, expiresOn } = await issueRotationChallenge(db, current, current.remoteAddress);
  res.status(200).json({ challenge, expiresOn: expiresOn.toISOString() });
}

/**
 * POST /device_endpoint/rotate, with the current certificate: the next
 * certificate and the proof that the device holds its key. Either JSON
 * `{"certificate": "<PEM>", "challenge": "...", "signature": "<base64>"}`, or
 * the PEM itself (`application/x-pem-file`) with the challenge and signature
 * in the X-Rotation-Challenge and X-Rotation-Signature headers.
 * 202: pending, with the completion secret (shown once).
 */
export async function handleRotate(
  db: Kysely<Database>,
  config: Config,
  req: Request,
  res: Response,
) {
  const current = await requireActiveDevice(db, req);
  const rotation = await requestRotation(
    db,
    current,
    proofFrom(req),
    settingsOf(config),
    current.remoteAddress,
  );
  res.status(202).json({
    ...rotation,
    notAfter: rotation.notAfter.toISOString(),
    expiresOn: rotation.expiresOn.toISOString(),
  });
}

/**
 * POST /device_endpoint/rotate/complete, with the NEW certificate:
 * `{"completionSecret": "..."}`. 200: the new certificate is the device's.
 */
export async function handleRotationComplete(
  db: Kysely<Database>,
  config: Config,
  req: Request,
  res: Response,
) {
  const presented = requireClientCertificate(req);
  const secret = field(req.body, 'completionSecret');
  if (secret === undefined) {
    throw badRequest(
      'invalid_rotation_request',
      'send JSON {"completionSecret": "<the secret answered by POST /device_endpoint/rotate>"}',
    );
  }
  const done = await completeRotation(
    db,
    presented,
    secret,
    settingsOf(config),
    clientAddressOf(req),
  );
  res.status(200).json({
    ...done,
    previousCertificatesRetireAt: done.previousCertificatesRetireAt.toISOString(),
  });
}

function proofFrom(req: Request): RotationProof {
  const body: unknown = req.body;
  const proof =
    typeof body === 'string'
      ? {
          certificate: body,
          challenge: header(req, CHALLENGE_HEADER),
          signature: header(req, SIGNATURE_HEADER),
        }
      : {
          certificate: field(body, 'certificate'),
          challenge: field(body, 'challenge'),
          signature: field(body, 'signature'),
        };
  if (!proof.certificate?.trim() || !proof.challenge || !proof.signature) {
    throw badRequest(
      'invalid_rotation_request',
      'send JSON {"certificate": "<PEM>", "challenge": "...", "signature": "<base64>"}, or the PEM ' +
        'as application/x-pem-file with X-Rotation-Challenge and X-Rotation-Signature headers',
    );
  }
  return proof as RotationProof;
}

function field(body: unknown, name: string): string | undefined {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return undefined;
  const value = (body as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : undefined;
}

function header(req: Request, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === 'string' ? value.trim() : undefined;
}
