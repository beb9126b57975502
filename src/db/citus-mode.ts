/**
 * Whether this process talks to a Citus cluster. Set once at start by
 * `serve` (after migrations); queries whose best shape differs there read it.
 * Everything stays correct with it off (Citus then fans queries out to every
 * shard); with it on, the hot queries name one shard.
 */
let citus = false;

export function setOnCitus(on: boolean): void {
  citus = on;
}

export function onCitus(): boolean {
  return citus;
}
