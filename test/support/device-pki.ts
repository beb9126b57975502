import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { curl } from './curl.js';
import { uniqueName } from './fixture.js';
import type { FleetgateProcess } from './fleetgate-process.js';
import { OpensslPki } from './openssl-ca.js';

/** The extensions of an intermediate CA that signs device certificates only. */
export const INTERMEDIATE_EXT =
  'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign';

/** Runs a `fleetgate` CLI command against `server`; throws with its stderr unless it exits 0. */
export async function cliOk(server: FleetgateProcess, args: string[]): Promise<string> {
  const r = await server.cli(args);
  if (r.code !== 0) throw new Error(`fleetgate ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Where devices of the PKI talk to: the server (for its CLI) and the TLS front they reach. */
export interface PkiEndpoint {
  server: FleetgateProcess;
  /** The CA of the certificate the devices see (the server's own, or nginx's). */
  caPem: string;
  /** `https://localhost:PORT`, without a path. */
  baseUrl: string;
}

/**
 * The certificate authorities of one `describe`: an openssl PKI of its own in a
 * temporary directory, made in `before` and removed in `after` (call this inside
 * the describe, after the hooks that start the endpoint), and curl requests that
 * present a device's certificate and chain to the endpoint, as a device would.
 */
export function useDevicePki(endpoint: () => PkiEndpoint) {
  let pki: OpensslPki | undefined;
  let caFile = '';
  before(() => {
    pki = new OpensslPki(fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-pki-')));
    caFile = path.join(pki.dir, 'server-ca.pem');
    fs.writeFileSync(caFile, endpoint().caPem);
  });
  after(() => {
    if (pki) fs.rmSync(pki.dir, { recursive: true, force: true });
  });
  const made = () => {
    if (!pki) throw new Error('useDevicePki: the PKI is made in a before hook');
    return pki;
  };
  const url = () => `${endpoint().baseUrl}/device_endpoint`;
  /** curl's TLS arguments: the server's CA, the device's certificate followed by `chain`, its key. */
  const tls = (device: string, chain: string[]) => [
    '--cacert',
    caFile,
    '--cert',
    made().chainFile(device, chain),
    '--key',
    made().file(`${device}.key`),
  ];
  let uploads = 0;
  const ok = (args: string[]) => cliOk(endpoint().server, args);
  return {
    get pki(): OpensslPki {
      return made();
    },
    get caFile(): string {
      return caFile;
    },
    url,
    tls,
    ok,
    /** A new identity (its name made from `prefix`) that trusts a new root CA `<identity>-root`. */
    trustedRoot: async (prefix: string) => {
      const identity = uniqueName(prefix);
      const root = `${identity}-root`;
      made().root(root);
      await ok(['identity', 'create', identity]);
      await ok(['ca', 'trust', identity, made().file(`${root}.crt`)]);
      return { identity, root };
    },
    /** A device's certificate and key as PEM, for the WebSocket and MQTT clients. */
    pems: (device: string) => ({
      certPem: fs.readFileSync(made().file(`${device}.crt`), 'utf8'),
      keyPem: fs.readFileSync(made().file(`${device}.key`), 'utf8'),
    }),
    /** Enrollment by chain: `{}` with the device's certificate (and `chain`). */
    enroll: (device: string, chain: string[]) =>
      curl([...tls(device, chain), '-H', 'Content-Type: application/json', '-d', '{}', url()]),
    /** A one-file upload of `points` (CSV) to the series `temp`. */
    upload: (device: string, chain: string[], points: string) => {
      const file = made().file(`${device}-${++uploads}.csv`);
      fs.writeFileSync(file, points);
      return curl([...tls(device, chain), '-F', `temp=@${file};type=text/plain`, url()]);
    },
  };
}

/** `useDevicePki` for a `useFixture` server, reached directly. */
export function fixtureEndpoint(server: () => FleetgateProcess): () => PkiEndpoint {
  return () => ({
    server: server(),
    caPem: server().caPem,
    baseUrl: `https://localhost:${server().port}`,
  });
}
