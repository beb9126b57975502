import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import typeIs from 'type-is';
import type { Kysely } from 'kysely';
import type { Config } from '../config/config.js';
import type { Database } from '../db/schema.js';
import { methodNotAllowed, unsupportedMediaType } from '../http/app-error.js';
import { answerAndClose, bodyGuardOptions, guardBody } from '../http/body-guard.js';
import { continueIfExpected } from '../http/expect-continue.js';
import type { IngestBackend } from '../ingest/upload-transaction.js';
import { requireClientCertificate } from '../tls/client-certificate.js';
import {
  createPollThrottle,
  createThrottles,
  type Throttles,
} from '../throttle/throttle.service.js';
import { handleBind } from './bind.handler.js';
import { handleMessages } from './messages.handler.js';
import { handleRotate, handleRotationChallenge, handleRotationComplete } from './rotate.handler.js';
import { handleRegistrationComplete, handleRegistrationStatus } from './registration.handler.js';
import { handleStatus } from './status.handler.js';
import { handleUpload } from './upload.handler.js';
import { UploadSlots } from './upload-slots.js';

export const DEVICE_ENDPOINT = '/device_endpoint';
export const MESSAGES_ENDPOINT = '/device_endpoint/messages';
export const ROTATE_ENDPOINT = '/device_endpoint/rotate';
export const ROTATE_CHALLENGE_ENDPOINT = '/device_endpoint/rotate/challenge';
export const ROTATE_COMPLETE_ENDPOINT = '/device_endpoint/rotate/complete';
export const REGISTRATION_ENDPOINT = '/device_endpoint/registrations/:rid';
export const REGISTRATION_STATUS_ENDPOINT = '/device_endpoint/registrations/:rid/status';

/** What the routes of one app share: one upload budget and one set of upload slots per device. */
export interface DeviceEndpointState {
  /** Shared with the WebSocket channel: one upload budget per device over every channel. */
  throttles: Throttles;
  slots: UploadSlots;
}

export function deviceEndpointState(config: Config, throttles?: Throttles): DeviceEndpointState {
  return {
    throttles: throttles ?? createThrottles(config.throttle),
    slots: new UploadSlots(config.maxConcurrentUploadsPerDevice),
  };
}

/**
 * The device endpoint's hot routes, the requests a fleet sends all day: a
 * status request (GET /device_endpoint) and a multipart upload (POST
 * /device_endpoint). They run the same handlers as through express, without
 * express's per-request set-up (app.ts); anything else, or a path express
 * would also match in another spelling (a query, a trailing slash, capitals),
 * returns undefined and goes through express.
 */
export function hotDeviceRoute(
  db: Kysely<Database>,
  config: Config,
  ingest: IngestBackend,
  { throttles, slots }: DeviceEndpointState,
): (req: IncomingMessage) => ((res: ServerResponse) => Promise<void>) | undefined {
  return (req) => {
    if (req.url !== DEVICE_ENDPOINT) return undefined;
    if (req.method === 'GET') return (res) => handleStatus(db, req, res);
    if (req.method === 'POST' && typeIs(req, ['multipart/form-data'])) {
      return async (res) => {
        requireClientCertificate(req);
        await handleUpload(db, ingest, config, throttles, slots, req, res);
      };
    }
    return undefined;
  };
}

/** A PEM certificate is a few KB; a whole chain would still fit. */
const MAX_PEM_BYTES = 64 * 1024;

/**
 * POST /device_endpoint carries two messages told apart by Content-Type: the
 * bind JSON and the multipart upload. The certificate is checked before the
 * body is read, so a client without one is turned away at once.
 */
export function deviceEndpointRoutes(
  db: Kysely<Database>,
  config: Config,
  ingest: IngestBackend,
  { throttles, slots }: DeviceEndpointState,
): Router {
  const router = Router();
  const json = express.json({ limit: config.limits.maxJsonBytes, strict: false, type: () => true });
  /**
   * Reads a small body with a body parser under the same idle and minimum-rate
   * limits as uploads; an `Expect: 100-continue` client is let go on here.
   */
  const readBody = (parser: express.RequestHandler, then: () => void) =>
    ((req: Request, res: Response, next: NextFunction) => {
      continueIfExpected(req, res);
      const guard = guardBody(req, bodyGuardOptions(config), (err) => answerAndClose(res, err));
      parser(req, res, (err?: unknown) => {
        guard.stop();
        if (res.headersSent) return;
        if (err) return next(err);
        then();
      });
    }) satisfies express.RequestHandler;

  router.get(DEVICE_ENDPOINT, (req, res, next) => {
    handleStatus(db, req, res).catch(next);
  });

  router.post(DEVICE_ENDPOINT, (req: Request, res: Response, next: NextFunction) => {
    requireClientCertificate(req);
    if (req.is('application/json')) {
      readBody(json, () => handleBind(db, config, throttles, req, res).catch(next))(req, res, next);
      return;
    }
    if (req.is('multipart/form-data')) {
      handleUpload(db, ingest, config, throttles, slots, req, res).catch(next);
      return;
    }
    throw unsupportedMediaType(
      'send application/json to bind a certificate or multipart/form-data to upload series',
    );
  });

  const messagesJson = express.json({
    limit: config.limits.maxMessageBytes,
    strict: false,
    type: () => true,
    // The text as sent, to refuse number literals JSON.parse would change (1e-400).
    verify: (req, _res, buf) => {
      (req as Request & { rawBody?: Buffer }).rawBody = buf;
    },
  });
  router.post(MESSAGES_ENDPOINT, (req: Request, res: Response, next: NextFunction) => {
    requireClientCertificate(req);
    if (!req.is('application/json')) {
      throw unsupportedMediaType('send JSON messages as application/json');
    }
    // Under the same idle and minimum-rate limits as every other body.
    readBody(messagesJson, () =>
      handleMessages({ db, ingest, config, throttles }, req, res).catch(next),
    )(req, res, next);
  });

  const rotationJson = express.json({ limit: MAX_PEM_BYTES, strict: false, type: () => true });
  const rotationPem = express.text({ limit: MAX_PEM_BYTES, type: () => true });
  router.post(ROTATE_ENDPOINT, (req: Request, res: Response, next: NextFunction) => {
    requireClientCertificate(req);
    const parser = req.is('application/json')
      ? rotationJson
      : req.is(['application/x-pem-file', 'text/plain'])
        ? rotationPem
        : null;
    if (!parser) {
      throw unsupportedMediaType(
        'send the new certificate as application/x-pem-file or application/json',
      );
    }
    readBody(parser, () => handleRotate(db, config, req, res).catch(next))(req, res, next);
  });

  router.post(ROTATE_CHALLENGE_ENDPOINT, (req: Request, res: Response, next: NextFunction) => {
    requireClientCertificate(req);
    handleRotationChallenge(db, req, res).catch(next);
  });

  router.post(ROTATE_COMPLETE_ENDPOINT, (req: Request, res: Response, next: NextFunction) => {
    requireClientCertificate(req);
    if (!req.is('application/json')) {
      throw unsupportedMediaType('send JSON {"completionSecret": "..."}');
    }
    // Under the same idle and minimum-rate limits as every other body.
    readBody(rotationJson, () => handleRotationComplete(db, config, req, res).catch(next))(
      req,
      res,
      next,
    );
  });

  const polls = createPollThrottle(config.registrationPollIntervalMs);
  router.get(REGISTRATION_STATUS_ENDPOINT, (req: Request, res: Response, next: NextFunction) => {
    handleRegistrationStatus(db, polls, req, res).catch(next);
  });
  router.put(REGISTRATION_ENDPOINT, (req: Request, res: Response, next: NextFunction) => {
    requireClientCertificate(req);
    if (!req.is('application/json')) {
      throw unsupportedMediaType('send JSON {"nonce": "..."}');
    }
    readBody(json, () => handleRegistrationComplete(db, req, res).catch(next))(req, res, next);
  });
  router.all(REGISTRATION_STATUS_ENDPOINT, (req) => {
    throw methodNotAllowed(req.method, 'GET');
  });
  router.all(REGISTRATION_ENDPOINT, (req) => {
    throw methodNotAllowed(req.method, 'PUT');
  });

  router.all(DEVICE_ENDPOINT, (req) => {
    throw methodNotAllowed(req.method, 'GET, POST');
  });
  for (const path of [
    MESSAGES_ENDPOINT,
    ROTATE_ENDPOINT,
    ROTATE_CHALLENGE_ENDPOINT,
    ROTATE_COMPLETE_ENDPOINT,
  ]) {
    router.all(path, (req) => {
      throw methodNotAllowed(req.method, 'POST');
    });
  }
  return router;
}
