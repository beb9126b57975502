import type { Request, Response } from 'express';
import { storeMessages, type MessageDeps } from '../messages/messages.service.js';
import { requireClientCertificate } from '../tls/client-certificate.js';

/** POST /device_endpoint/messages: JSON messages, one or an array (see message-batch.ts). */
export async function handleMessages(deps: MessageDeps, req: Request, res: Response) {
  const certificate = requireClientCertificate(req);
  const raw = (req as Request & { rawBody?: Buffer }).rawBody;
  const { summary, rateLimit } = await storeMessages(
    deps,
    certificate,
    req.body,
    raw?.toString('utf8'),
  );
  for (const [name, value] of Object.entries(rateLimit)) res.setHeader(name, value);
  res.status(200).json(summary);
}
