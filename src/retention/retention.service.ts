import type { Kysely } from 'kysely';
import type { Actor } from '../audit/actor.js';
import { insertAuditEvent } from '../audit/audit.repository.js';
import type { Database } from '../db/schema.js';
import {
  emptyMonthPartition,
  listMonthPartitions,
  type MonthPartition,
} from './retention.repository.js';

export interface RetentionPlan {
  /** Points before this instant may go; only whole months entirely before it do. */
  horizon: string;
  partitions: Array<{ name: string; month: string; rows: number; bytes: number }>;
  rows: number;
  bytes: number;
  /** True once they were emptied (`--yes`). */
  applied: boolean;
}

function monthEnd(startMs: number): number {
  const d = new Date(startMs);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/**
 * `fleetgate retention --older-than 400d`: the month partitions of `points`
 * that lie wholly before now minus the duration, and holding data. Applied,
 * each is emptied in one statement and the action is audited.
 */
export async function retentionPlan(
  db: Kysely<Database>,
  olderThanMs: number,
  nowMs = Date.now(),
): Promise<{ plan: RetentionPlan; due: MonthPartition[] }> {
  const horizonMs = nowMs - olderThanMs;
  const due = (await listMonthPartitions(db)).filter(
    (p) => monthEnd(p.monthStartMs) <= horizonMs && p.rows > 0,
  );
  return {
    due,
    plan: {
      horizon: new Date(horizonMs).toISOString(),
      partitions: due.map((p) => ({
        name: p.name,
        month: new Date(p.monthStartMs).toISOString().slice(0, 7),
        rows: p.rows,
        bytes: p.bytes,
      })),
      rows: due.reduce((sum, p) => sum + p.rows, 0),
      bytes: due.reduce((sum, p) => sum + p.bytes, 0),
      applied: false,
    },
  };
}

export async function applyRetention(
  db: Kysely<Database>,
  olderThanMs: number,
  actor: Actor,
  /** Called with the points to delete, then after each month with the points deleted so far. */
  progress?: { start(total: number): void; update(done: number): void },
): Promise<RetentionPlan> {
  const { plan, due } = await retentionPlan(db, olderThanMs);
  if (due.length > 0) progress?.start(due.reduce((sum, p) => sum + p.rows, 0));
  let done = 0;
  for (const partition of due) {
    await db.transaction().execute(async (trx) => {
      await emptyMonthPartition(trx, partition.name);
      await insertAuditEvent(trx, {
        action: 'points.retention',
        actor: actor.kind,
        remoteAddress: actor.remoteAddress,
        details: { partition: partition.name, rows: partition.rows, horizon: plan.horizon },
      });
    });
    done += partition.rows;
    progress?.update(done);
  }
  return { ...plan, applied: true };
}
