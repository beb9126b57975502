import type { Request, Response } from 'express';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Actor } from '../audit/actor.js';
import type { Config } from '../config/config.js';
import type { Database } from '../db/schema.js';
import { badRequest } from '../http/app-error.js';

export interface AdminContext {
  db: Kysely<Database>;
  config: Config;
}

/** The parsed, validated input of one request. */
export interface AdminInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  actor: Actor;
}

/**
 * One admin endpoint: how it is served and how it is documented come from the
 * same declaration, so the OpenAPI document cannot miss or misdescribe a route.
 */
export interface AdminRoute {
  method: 'get' | 'post' | 'patch';
  /** Express syntax (`/v1/identities/:name`). */
  path: string;
  summary: string;
  tag: string;
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** Status code to description of the success answers. */
  responses: Record<number, string>;
  /** The JSON shape of the success answer, for the document. */
  response?: z.ZodType;
  /** Content types of the success answer; JSON when absent. */
  produces?: string[];
  handle(
    ctx: AdminContext,
    input: AdminInput<never, never, never>,
    req: Request,
    res: Response,
  ): Promise<void>;
}

/** Keeps the declared schemas' types for the handler while storing routes uniformly. */
export function adminRoute<
  P extends z.ZodObject = z.ZodObject<Record<string, never>>,
  Q extends z.ZodObject = z.ZodObject<Record<string, never>>,
  B extends z.ZodType = z.ZodUndefined,
>(route: {
  method: AdminRoute['method'];
  path: string;
  summary: string;
  tag: string;
  params?: P;
  query?: Q;
  body?: B;
  responses: Record<number, string>;
  response?: z.ZodType;
  produces?: string[];
  handle(
    ctx: AdminContext,
    input: AdminInput<z.infer<P>, z.infer<Q>, z.infer<B>>,
    req: Request,
    res: Response,
  ): Promise<void>;
}): AdminRoute {
  return route as unknown as AdminRoute;
}

/** Input that fails its schema is a 400 naming each problem. */
export function parseInput<T extends z.ZodType>(
  schema: T | undefined,
  value: unknown,
  where: string,
): z.infer<T> {
  if (!schema) return undefined as z.infer<T>;
  const parsed = schema.safeParse(value);
  if (parsed.success) {
    // PostgreSQL text cannot hold NUL: refuse it here rather than fail in the database.
    const nulAt = pathToNul(parsed.data, [where]);
    if (nulAt) {
      throw badRequest('invalid_request', `${nulAt.join('.')}: must not contain a NUL character`);
    }
    return parsed.data;
  }
  const problems = parsed.error.issues.map(
    (i) => `${[where, ...i.path.map(String)].join('.')}: ${i.message}`,
  );
  throw badRequest('invalid_request', problems.join('; '), { problems });
}

function pathToNul(value: unknown, at: string[]): string[] | null {
  if (typeof value === 'string') return value.includes('\u0000') ? at : null;
  if (value && typeof value === 'object') {
    for (const [key, inner] of Object.entries(value)) {
      const found = pathToNul(inner, [...at, key]);
      if (found) return found;
    }
  }
  return null;
}

export const identityNameParam = z.object({
  name: z.string().describe('identity name'),
});

export const fingerprintParam = z.object({
  fingerprint: z
    .string()
    .describe('SHA-256 fingerprint of any certificate of the device, 64 hex digits'),
});

/** Largest id of an `integer` column: larger ones exist nowhere, and Postgres refuses them. */
export const MAX_INT4 = 2_147_483_647;

/** A row id in a path: 1 to MAX_INT4, so that no number reaches the database as an overflow. */
export const rowIdParam = (description: string) =>
  z.coerce.number().int().min(1).max(MAX_INT4).describe(description);

/** A `bigint` id as a decimal string (cursor of the audit log): 0 to 2^63-1. */
export const bigintCursor = z
  .string()
  .regex(/^\d{1,19}$/, 'must be a decimal number')
  // Zod runs refinements after a failed regex too: BigInt must only see digits.
  .refine((text) => !/^\d+$/.test(text) || BigInt(text) <= 9_223_372_036_854_775_807n, {
    message: 'is out of range',
  });

export const limitQuery = (max: number, fallback: number) =>
  z.coerce.number().int().min(1).max(max).default(fallback).describe(`page size, 1 to ${max}`);
