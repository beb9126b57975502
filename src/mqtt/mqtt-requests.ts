import { findDeviceState } from '../devices/device-state.repository.js';
import { requireActiveCertificate } from '../devices/device-auth.js';
import { badRequest, notFound } from '../http/app-error.js';
import { toHttpError } from '../http/error-handler.js';
import {
  storeMessages,
  storeSeriesPoints,
  type MessageDeps,
} from '../messages/messages.service.js';
import type { CertificateInfo } from '../tls/certificate-info.js';
import { encryptResponse, parseResponseKey } from './response-encryption.js';

/** The RES of seed 001: status 1 (success) or 0 (error), the HTTP status as code. */
export interface MqttResponse {
  status: 0 | 1;
  code: number;
  id: string | number | null;
  data: unknown;
}

export const ENDPOINTS = ['points', 'messages', 'status', 'time'] as const;
const ID_MAX = 128;

/**
 * Answers one REQ (`{"id": ..., "data": ..., "key"?: ...}`) published to
 * `<identity>/req/<device>/<endpoint>`. Stores through the one ingest path
 * (storeMessages, storeSeriesPoints) and resolves after the commit; a refused
 * request stores nothing and is answered with its typed error. Never throws.
 */
export async function answerRequest(
  deps: MessageDeps,
  certificate: CertificateInfo,
  endpoint: string,
  payload: Buffer,
): Promise<MqttResponse> {
  let id: string | number | null = null;
  let key: Buffer | undefined;
  try {
    const text = payload.toString('utf8');
    let request: unknown;
    try {
      request = JSON.parse(text);
    } catch {
      throw badRequest('invalid_json', 'the REQ payload is not valid JSON');
    }
    if (typeof request !== 'object' || request === null || Array.isArray(request)) {
      throw badRequest('invalid_request', 'a REQ is a JSON object {"id", "data", "key"?}');
    }
    const fields = request as Record<string, unknown>;
    if (isId(fields.id)) id = fields.id;
    else {
      throw badRequest(
        'invalid_request',
        `a REQ needs an "id": a string of 1-${ID_MAX} characters or a number`,
      );
    }
    key = parseResponseKey(fields.key);
    const data = await perform(deps, certificate, endpoint, fields.data, text);
    return { status: 1, code: 200, id, data: key ? encryptResponse(key, data) : data };
  } catch (err) {
    const error = toHttpError(err);
    const data = {
      error: error.message,
      code: error.code,
      ...(error.details ? { details: error.details } : {}),
    };
    return { status: 0, code: error.status, id, data: key ? encryptResponse(key, data) : data };
  }
}

async function perform(
  deps: MessageDeps,
  certificate: CertificateInfo,
  endpoint: string,
  data: unknown,
  text: string,
): Promise<unknown> {
  switch (endpoint) {
    case 'points':
      return (await storeSeriesPoints(deps, certificate, data, text)).summary;
    case 'messages':
      return (await storeMessages(deps, certificate, data, text)).summary;
    case 'status': {
      const device = await requireActiveCertificate(deps.db, certificate);
      const state = await findDeviceState(deps.db, device.deviceId);
      return {
        status: 'active',
        identity: device.identityName,
        fingerprint: certificate.fingerprint,
        notAfter: certificate.notAfter.toISOString(),
        boundAt: device.boundAt.toISOString(),
        lastState: state
          ? { status: state.status, state: state.state, at: state.reportedAt.toISOString() }
          : null,
      };
    }
    case 'time':
      await requireActiveCertificate(deps.db, certificate);
      return Date.now();
    default:
      throw notFound(
        'unknown_endpoint',
        `no endpoint "${endpoint.slice(0, 40)}"; use one of ${ENDPOINTS.join(', ')}`,
      );
  }
}

function isId(value: unknown): value is string | number {
  return (
    (typeof value === 'string' && value.length >= 1 && value.length <= ID_MAX) ||
    (typeof value === 'number' && Number.isFinite(value))
  );
}
