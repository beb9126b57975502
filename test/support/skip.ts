/**
 * Skips the calling test or suite and says why, in the output of the run: a
 * skip is never silent. In CI, test/support/ci-pending.ts then fails the run
 * unless the skipped test is allowed to be pending on this database.
 */
export function skipBecause(ctx: Mocha.Context, reason: string): never {
  // In a test, ctx.test is the test; in a before hook, the hook (its parent is the suite).
  const runnable = ctx.test as (Mocha.Runnable & { type?: string }) | undefined;
  const what =
    runnable?.type === 'test' ? runnable.fullTitle() : (runnable?.parent?.fullTitle() ?? 'a test');
  console.warn(`    skipped "${what}": ${reason}`);
  ctx.skip();
}
