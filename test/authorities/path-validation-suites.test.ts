import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { curl, type CurlAnswer } from '../support/curl.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import { OpensslPki } from '../support/openssl-ca.js';

/**
 * More path validation cases at enrollment, for what the public suites cover
 * and test/authorities/path-validation.test.ts did not: each group names the
 * suite category that inspired it. The cases are our own (openssl CLI
 * hierarchies, curl presenting leaf + intermediates); nothing is copied.
 * Each refusal has a control device of the same root that enrolls.
 */
describe('enrollment: path validation cases after the public suites', function () {
  this.timeout(60_000);
  const fx = useFixture({ FLEETGATE_BIND_FAILURES_PER_ADDRESS: '0' });
  let pki: OpensslPki;
  let caFile: string;

  before(function () {
    pki = new OpensslPki(fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-suites-')));
    caFile = path.join(pki.dir, 'server-ca.pem');
    fs.writeFileSync(caFile, fx().server.caPem);
  });
  after(() => fs.rmSync(pki.dir, { recursive: true, force: true }));

  const cli = (args: string[]) => fx().server.cli(args);
  const ok = async (args: string[]) => {
    const r = await cli(args);
    if (r.code !== 0) throw new Error(`fleetgate ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const url = () => `https://localhost:${fx().server.port}/device_endpoint`;
  const enroll = (device: string, chain: string[]) =>
    curl([
      '--cacert',
      caFile,
      '--cert',
      pki.chainFile(device, chain),
      '--key',
      pki.file(`${device}.key`),
      '-H',
      'Content-Type: application/json',
      '-d',
      '{}',
      url(),
    ]);
  const CA = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign';
  const INTERMEDIATE =
    'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign';

  async function trustedRoot(rootExt?: string) {
    const identity = uniqueName('suites');
    const root = `${identity}-root`;
    pki.root(root, rootExt);
    await ok(['identity', 'create', identity]);
    await ok(['ca', 'trust', identity, pki.file(`${root}.crt`)]);
    pki.issue(`${identity}-control`, root);
    const control = await enroll(`${identity}-control`, []);
    expect(control.status, `control device: ${control.text}`).to.equal(200);
    return { identity, root };
  }

  function expectRefused(answer: CurlAnswer, code: string | string[], reason?: string) {
    expect(answer.status, answer.text).to.equal(403);
    expect(answer.json.code, answer.text).to.be.oneOf([code].flat());
    if (reason) expect(answer.json.details?.reason, answer.text).to.equal(reason);
  }

  /** The same CA once more: same name, same key, another serial and validity (another fingerprint). */
  function reissue(ca: string, as: string): void {
    const cn = /CN\s*=\s*([^,/\n]+)/
      .exec(
        execFileSync('openssl', [
          'x509',
          '-in',
          pki.file(`${ca}.crt`),
          '-noout',
          '-subject',
        ]).toString(),
      )![1]!
      .trim();
    fs.writeFileSync(
      pki.file(`${as}.cnf`),
      `[req]\ndistinguished_name=dn\n[dn]\n[v3]\n${CA}\nsubjectKeyIdentifier=hash\n`,
    );
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-new',
        '-key',
        `${ca}.key`,
        '-subj',
        `/CN=${cn}`,
        '-days',
        '2000',
        '-set_serial',
        '4242',
        '-config',
        `${as}.cnf`,
        '-extensions',
        'v3',
        '-out',
        `${as}.crt`,
      ],
      { cwd: pki.dir, stdio: 'pipe' },
    );
  }

  // Go crypto/x509 verify_test (TestPathBuilding: re-issued and cross-signed roots)
  // and x509-limbo's cross-signing cases: a CA re-issued with its own key is one
  // issuer, whichever certificate of it a chain ends at.
  describe('trust anchors re-issued with the same key (Go path building, x509-limbo cross-signing)', () => {
    it('refuses to trust for a second identity a CA re-issued with the same name and key (409), so its devices cannot change identity', async () => {
      const { identity, root } = await trustedRoot();
      reissue(root, `${root}-again`);
      const other = uniqueName('suites-other');
      await ok(['identity', 'create', other]);
      const refused = await cli(['ca', 'trust', other, pki.file(`${root}-again.crt`)]);
      expect(refused.code, refused.stdout).to.not.equal(0);
      expect(refused.stderr).to.match(/ca_belongs_to_other_identity|another identity/);
      // A device presenting the re-issued certificate still enrolls into the first identity.
      pki.issue(`${identity}-dev`, root);
      const answer = await enroll(`${identity}-dev`, [`${root}-again`]);
      expect(answer.status, answer.text).to.equal(200);
      expect(answer.json.identity).to.equal(identity);
      // The same identity may trust its own CA's new certificate (a renewal).
      const same = await ok(['ca', 'trust', identity, pki.file(`${root}-again.crt`)]);
      expect(same).to.match(/trusted/);
    });
  });

  // NIST PKITS 4.6 (basic constraints: pathLenConstraint on the trust anchor, v1
  // intermediates without basicConstraints) and x509-limbo pathlen cases.
  describe('basic constraints on the anchor and intermediates (PKITS 4.6, x509-limbo pathlen)', () => {
    it('refuses an intermediate below a root whose pathlen is 0 (chain_invalid, path_length_exceeded)', async () => {
      const { identity, root } = await trustedRoot(`${CA.replace('CA:TRUE', 'CA:TRUE,pathlen:0')}`);
      pki.issue(`${identity}-inter`, root, { ext: INTERMEDIATE });
      pki.issue(`${identity}-dev`, `${identity}-inter`);
      expectRefused(
        await enroll(`${identity}-dev`, [`${identity}-inter`]),
        'chain_invalid',
        'path_length_exceeded',
      );
    });

    it('refuses an intermediate without basicConstraints (a v1-style CA)', async () => {
      const { identity, root } = await trustedRoot();
      pki.issue(`${identity}-inter`, root, { ext: 'keyUsage=critical,keyCertSign,cRLSign' });
      pki.issue(`${identity}-dev`, `${identity}-inter`);
      // OpenSSL may already refuse to link it in the handshake: incomplete or invalid, never enrolled.
      expectRefused(await enroll(`${identity}-dev`, [`${identity}-inter`]), [
        'chain_invalid',
        'chain_incomplete',
      ]);
    });
  });

  // NIST PKITS 4.2 (validity periods) and Go verify_test "expired leaf".
  describe('validity of the device certificate itself (PKITS 4.2)', () => {
    it('refuses an expired device certificate and one not valid yet', async () => {
      const { identity, root } = await trustedRoot();
      pki.issue(`${identity}-old`, root, {
        startDate: '20200101000000Z',
        endDate: '20210101000000Z',
      });
      // Refused before any chain is built: the device's own certificate is checked first (401).
      const old = await enroll(`${identity}-old`, []);
      expect(old.status, old.text).to.equal(401);
      expect(old.json.code, old.text).to.equal('certificate_expired');
      pki.issue(`${identity}-early`, root, {
        startDate: '20900101000000Z',
        endDate: '20950101000000Z',
      });
      const early = await enroll(`${identity}-early`, []);
      expect(early.status, early.text).to.equal(401);
      expect(early.json.code, early.text).to.match(/^certificate_not_(yet_)?valid/);
    });
  });

  // NIST PKITS 4.13 (name constraints) and 4.10/4.12 (policy constraints, inhibitAnyPolicy):
  // fleetgate does not process them, so marked critical they must refuse the chain.
  describe('name and policy constraints (PKITS 4.13, 4.10, 4.12)', () => {
    it('refuses an intermediate with nameConstraints (critical or not) or critical policyConstraints', async () => {
      const { identity, root } = await trustedRoot();
      pki.issue(`${identity}-nc`, root, {
        ext: `${INTERMEDIATE}\nnameConstraints=critical,permitted;DNS:example.invalid`,
      });
      pki.issue(`${identity}-dev1`, `${identity}-nc`);
      expectRefused(
        await enroll(`${identity}-dev1`, [`${identity}-nc`]),
        'chain_invalid',
        'unknown_critical_extension',
      );
      // Not marked critical (a non-conforming CA): still constraints fleetgate cannot honour.
      pki.issue(`${identity}-ncn`, root, {
        ext: `${INTERMEDIATE}\nnameConstraints=permitted;DNS:example.invalid`,
      });
      pki.issue(`${identity}-dev4`, `${identity}-ncn`);
      expectRefused(
        await enroll(`${identity}-dev4`, [`${identity}-ncn`]),
        'chain_invalid',
        'unknown_critical_extension',
      );
      pki.issue(`${identity}-pc`, root, {
        ext: `${INTERMEDIATE}\npolicyConstraints=critical,requireExplicitPolicy:0`,
      });
      pki.issue(`${identity}-dev2`, `${identity}-pc`);
      expectRefused(
        await enroll(`${identity}-dev2`, [`${identity}-pc`]),
        'chain_invalid',
        'unknown_critical_extension',
      );
      pki.issue(`${identity}-iap`, root, {
        ext: `${INTERMEDIATE}\ninhibitAnyPolicy=critical,0`,
      });
      pki.issue(`${identity}-dev3`, `${identity}-iap`);
      expectRefused(await enroll(`${identity}-dev3`, [`${identity}-iap`]), [
        'chain_invalid',
        'chain_incomplete',
      ]);
    });
  });

  // Go crypto/x509 TestPathologicalChain / TestLongChain and PKITS "loop in chain":
  // a hostile chain ends quickly with a 4xx, never a 5xx or a hang.
  describe('pathological chains (Go TestPathologicalChain, TestLongChain)', () => {
    it('refuses two intermediates that sign each other, quickly', async () => {
      const { identity } = await trustedRoot();
      // a signs b, and b signs a second "a" (same name, own key): a pair naming each other, no trusted root.
      pki.root(`${identity}-a`, CA);
      pki.issue(`${identity}-b`, `${identity}-a`, { ext: CA });
      pki.issue(`${identity}-a2`, `${identity}-b`, { ext: CA, cn: `${identity}-a` });
      pki.issue(`${identity}-dev`, `${identity}-a2`);
      const started = Date.now();
      const answer = await enroll(`${identity}-dev`, [`${identity}-a2`, `${identity}-b`]);
      expect(answer.status, answer.text).to.be.within(400, 499);
      expect(answer.json.code, answer.text).to.be.oneOf([
        'chain_incomplete',
        'ca_untrusted',
        'chain_invalid',
      ]);
      expect(Date.now() - started).to.be.below(10_000);
    });

    it('refuses a chain deeper than fleetgate follows (12 intermediates) with 403 chain_incomplete', async () => {
      const { identity, root } = await trustedRoot();
      let issuer = root;
      const chain: string[] = [];
      for (let i = 0; i < 12; i++) {
        const name = `${identity}-deep${i}`;
        pki.issue(name, issuer, { ext: CA });
        chain.unshift(name);
        issuer = name;
      }
      pki.issue(`${identity}-dev`, issuer);
      expectRefused(await enroll(`${identity}-dev`, chain), 'chain_incomplete');
    });
  });

  // NIST PKITS 4.4 (basic CRL checks) with a CA registered below another one:
  // the intermediate's own CRL counts when the intermediate is a trust anchor too.
  describe('CRLs of a registered intermediate (PKITS 4.4)', () => {
    it('refuses a device its registered intermediate revoked, even when the root is trusted too', async () => {
      const { identity, root } = await trustedRoot();
      pki.issue(`${identity}-inter`, root, { ext: INTERMEDIATE });
      await ok(['ca', 'trust', identity, pki.file(`${identity}-inter.crt`)]);
      pki.issue(`${identity}-dev`, `${identity}-inter`);
      pki.issue(`${identity}-dev-ok`, `${identity}-inter`);
      pki.revoke(`${identity}-dev`, `${identity}-inter`);
      await ok(['ca', 'crl', identity, pki.crl(`${identity}-inter`)]);
      expectRefused(
        await enroll(`${identity}-dev`, [`${identity}-inter`]),
        'certificate_revoked_by_ca',
      );
      const sound = await enroll(`${identity}-dev-ok`, [`${identity}-inter`]);
      expect(sound.status, sound.text).to.equal(200);
    });
  });

  // The README's anti-hijack by name, for MAC names (fleetgate's own rule, in the
  // spirit of x509-limbo's name-matching cases: one name, several spellings).
  describe('MAC addresses as names, whatever their spelling', () => {
    it('enrolls a pre-registered MAC whose CN is in upper case, and refuses a second certificate for it in another form', async () => {
      const { identity, root } = await trustedRoot();
      const macs = path.join(pki.dir, `${identity}.macs`);
      fs.writeFileSync(macs, '44:8a:5b:9c:70:a3\n');
      await ok(['devices', 'preregister', identity, '--macs', macs]);
      pki.issue(`${identity}-upper`, root, { cn: '44:8A:5B:9C:70:A3' });
      const first = await enroll(`${identity}-upper`, []);
      expect(first.status, first.text).to.equal(200);
      expect(first.json.name).to.equal('44:8a:5b:9c:70:a3');
      pki.issue(`${identity}-bare`, root, { cn: '448a5b9c70a3' });
      const second = await enroll(`${identity}-bare`, []);
      expect(second.status, second.text).to.equal(409);
      expect(second.json.code).to.equal('device_name_taken');
    });
  });
});
