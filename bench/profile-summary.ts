import fs from 'node:fs';

/**
 * `node dist/bench/profile-summary.js FILE.cpuprofile`: self time per
 * function and per package, heaviest first, to see where the server's CPU goes.
 */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const profile = JSON.parse(fs.readFileSync(process.argv[2]!, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfByFunction = new Map<string, number>();
const selfByArea = new Map<string, number>();
let total = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  total += dt;
  const frame = byId.get(id)!.callFrame;
  const url = frame.url.replace(/^file:\/\//, '');
  const area =
    /node_modules\/(@[^/]+\/[^/]+|[^/]+)/.exec(url)?.[1] ??
    (url.includes('/dist/src/')
      ? `fleetgate ${url.split('/dist/src/')[1]!.split('/')[0]}`
      : url.startsWith('node:')
        ? url
        : frame.functionName.startsWith('(')
          ? frame.functionName
          : 'node internals');
  const name = `${frame.functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${frame.lineNumber + 1}`;
  selfByFunction.set(name, (selfByFunction.get(name) ?? 0) + dt);
  selfByArea.set(area, (selfByArea.get(area) ?? 0) + dt);
});
const top = (map: Map<string, number>, n: number) =>
  [...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`)
    .join('\n');
process.stdout.write(
  `total ${(total / 1e6).toFixed(1)} s sampled\n\nby area\n${top(selfByArea, 15)}\n\nby function\n${top(selfByFunction, 25)}\n`,
);
