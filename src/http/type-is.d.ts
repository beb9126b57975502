// type-is (express's own content-type matcher, a dependency of ours for the
// hot routes that run without express) ships no types.
declare module 'type-is' {
  import type { IncomingMessage } from 'node:http';
  function typeIs(req: IncomingMessage, types: string[]): string | false | null;
  export default typeIs;
}
