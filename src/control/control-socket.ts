import fs from 'node:fs';
import http from 'node:http';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import { adminCommands, type AdminArgs } from '../cli/admin-commands.js';
import type { Database } from '../db/schema.js';
import { tokenFromEnvironment } from '../admin/admin-token.service.js';
import { AppError } from '../http/app-error.js';
import { toHttpError } from '../http/error-handler.js';
import { controlSocketPath } from './control-client.js';

export { controlSocketPath } from './control-client.js';

export async function startControlSocket(
  dataDir: string,
  db: Kysely<Database>,
  log: Logger,
  /** FLEETGATE_ADMIN_TOKEN is set in the server: `admin-token reset` is refused. */
  adminTokenFromEnvironment = false,
): Promise<http.Server> {
  const socketPath = controlSocketPath(dataDir);
  fs.rmSync(socketPath, { force: true });
  const server = http.createServer((req, res) => {
    readJson(req)
      .then(async ({ command, args }) => {
        const run = adminCommands[command];
        if (!run) throw Object.assign(new Error(`unknown command ${command}`), { status: 404 });
        if (command === 'admin-token.reset' && adminTokenFromEnvironment) {
          throw new AppError(409, 'admin_token_from_environment', tokenFromEnvironment().message);
        }
        // Headers go out with the first output, so a command that fails before
        // writing anything (an unknown device) still gets its JSON error.
        res.setHeader('Content-Type', 'text/plain; charset=utf-8');
        await run(db, args, res);
        res.end();
      })
      .catch((err: unknown) => {
        if (res.headersSent) return res.destroy();
        const appError = toHttpError(err);
        if (appError.status >= 500) log.error({ err }, 'control command failed');
        res.writeHead(appError.status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: appError.message, code: appError.code }));
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  fs.chmodSync(socketPath, 0o600);
  return server;
}

async function readJson(req: http.IncomingMessage): Promise<{ command: string; args: AdminArgs }> {
  let body = '';
  for await (const chunk of req) body += String(chunk);
  const parsed = JSON.parse(body) as { command?: unknown; args?: unknown };
  return { command: String(parsed.command), args: (parsed.args ?? {}) as AdminArgs };
}
