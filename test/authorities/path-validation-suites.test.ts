import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import type { CurlAnswer } from '../support/curl.js';
import { fixtureEndpoint, INTERMEDIATE_EXT, useDevicePki } from '../support/device-pki.js';
import { useFixture, uniqueName } from '../support/fixture.js';

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
  const certs = useDevicePki(fixtureEndpoint(() => fx().server));
  const { ok, enroll } = certs;
  const cli = (args: string[]) => fx().server.cli(args);
  const CA = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign';

  async function trustedRoot(rootExt?: string) {
    const identity = uniqueName('suites');
    const root = `${identity}-root`;
    certs.pki.root(root, rootExt);
    await ok(['identity', 'create', identity]);
    await ok(['ca', 'trust', identity, certs.pki.file(`${root}.crt`)]);
    certs.pki.issue(`${identity}-control`, root);
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
  const reissue = (ca: string, as: string) =>
    certs.pki.reissueRoot(ca, as, {
      serial: 4242,
      days: 2000,
      ext: `${CA}\nsubjectKeyIdentifier=hash`,
    });

  // Go crypto/x509 verify_test (TestPathBuilding: re-issued and cross-signed roots)
  // and x509-limbo's cross-signing cases: a CA re-issued with its own key is one
  // issuer, whichever certificate of it a chain ends at.
  describe('trust anchors re-issued with the same key (Go path building, x509-limbo cross-signing)', () => {
    it('refuses to trust for a second identity a CA re-issued with the same name and key (409), so its devices cannot change identity', async () => {
      const { identity, root } = await trustedRoot();
      reissue(root, `${root}-again`);
      const other = uniqueName('suites-other');
      await ok(['identity', 'create', other]);
      const refused = await cli(['ca', 'trust', other, certs.pki.file(`${root}-again.crt`)]);
      expect(refused.code, refused.stdout).to.not.equal(0);
      expect(refused.stderr).to.match(/ca_belongs_to_other_identity|another identity/);
      // A device presenting the re-issued certificate still enrolls into the first identity.
      certs.pki.issue(`${identity}-dev`, root);
      const answer = await enroll(`${identity}-dev`, [`${root}-again`]);
      expect(answer.status, answer.text).to.equal(200);
      expect(answer.json.identity).to.equal(identity);
      // The same identity may trust its own CA's new certificate (a renewal).
      const same = await ok(['ca', 'trust', identity, certs.pki.file(`${root}-again.crt`)]);
      expect(same).to.match(/trusted/);
    });
  });

  // NIST PKITS 4.6 (basic constraints: pathLenConstraint on the trust anchor, v1
  // intermediates without basicConstraints) and x509-limbo pathlen cases.
  describe('basic constraints on the anchor and intermediates (PKITS 4.6, x509-limbo pathlen)', () => {
    it('refuses an intermediate below a root whose pathlen is 0 (chain_invalid, path_length_exceeded)', async () => {
      const { identity, root } = await trustedRoot(`${CA.replace('CA:TRUE', 'CA:TRUE,pathlen:0')}`);
      certs.pki.issue(`${identity}-inter`, root, { ext: INTERMEDIATE_EXT });
      certs.pki.issue(`${identity}-dev`, `${identity}-inter`);
      expectRefused(
        await enroll(`${identity}-dev`, [`${identity}-inter`]),
        'chain_invalid',
        'path_length_exceeded',
      );
    });

    it('refuses an intermediate without basicConstraints (a v1-style CA)', async () => {
      const { identity, root } = await trustedRoot();
      certs.pki.issue(`${identity}-inter`, root, { ext: 'keyUsage=critical,keyCertSign,cRLSign' });
      certs.pki.issue(`${identity}-dev`, `${identity}-inter`);
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
      certs.pki.issue(`${identity}-old`, root, {
        startDate: '20200101000000Z',
        endDate: '20210101000000Z',
      });
      // Refused before any chain is built: the device's own certificate is checked first (401).
      const old = await enroll(`${identity}-old`, []);
      expect(old.status, old.text).to.equal(401);
      expect(old.json.code, old.text).to.equal('certificate_expired');
      certs.pki.issue(`${identity}-early`, root, {
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
      certs.pki.issue(`${identity}-nc`, root, {
        ext: `${INTERMEDIATE_EXT}\nnameConstraints=critical,permitted;DNS:example.invalid`,
      });
      certs.pki.issue(`${identity}-dev1`, `${identity}-nc`);
      expectRefused(
        await enroll(`${identity}-dev1`, [`${identity}-nc`]),
        'chain_invalid',
        'unknown_critical_extension',
      );
      // Not marked critical (a non-conforming CA): still constraints fleetgate cannot honour.
      certs.pki.issue(`${identity}-ncn`, root, {
        ext: `${INTERMEDIATE_EXT}\nnameConstraints=permitted;DNS:example.invalid`,
      });
      certs.pki.issue(`${identity}-dev4`, `${identity}-ncn`);
      expectRefused(
        await enroll(`${identity}-dev4`, [`${identity}-ncn`]),
        'chain_invalid',
        'unknown_critical_extension',
      );
      certs.pki.issue(`${identity}-pc`, root, {
        ext: `${INTERMEDIATE_EXT}\npolicyConstraints=critical,requireExplicitPolicy:0`,
      });
      certs.pki.issue(`${identity}-dev2`, `${identity}-pc`);
      expectRefused(
        await enroll(`${identity}-dev2`, [`${identity}-pc`]),
        'chain_invalid',
        'unknown_critical_extension',
      );
      certs.pki.issue(`${identity}-iap`, root, {
        ext: `${INTERMEDIATE_EXT}\ninhibitAnyPolicy=critical,0`,
      });
      certs.pki.issue(`${identity}-dev3`, `${identity}-iap`);
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
      certs.pki.root(`${identity}-a`, CA);
      certs.pki.issue(`${identity}-b`, `${identity}-a`, { ext: CA });
      certs.pki.issue(`${identity}-a2`, `${identity}-b`, { ext: CA, cn: `${identity}-a` });
      certs.pki.issue(`${identity}-dev`, `${identity}-a2`);
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
        certs.pki.issue(name, issuer, { ext: CA });
        chain.unshift(name);
        issuer = name;
      }
      certs.pki.issue(`${identity}-dev`, issuer);
      expectRefused(await enroll(`${identity}-dev`, chain), 'chain_incomplete');
    });
  });

  // NIST PKITS 4.4 (basic CRL checks) with a CA registered below another one:
  // the intermediate's own CRL counts when the intermediate is a trust anchor too.
  describe('CRLs of a registered intermediate (PKITS 4.4)', () => {
    it('refuses a device its registered intermediate revoked, even when the root is trusted too', async () => {
      const { identity, root } = await trustedRoot();
      certs.pki.issue(`${identity}-inter`, root, { ext: INTERMEDIATE_EXT });
      await ok(['ca', 'trust', identity, certs.pki.file(`${identity}-inter.crt`)]);
      certs.pki.issue(`${identity}-dev`, `${identity}-inter`);
      certs.pki.issue(`${identity}-dev-ok`, `${identity}-inter`);
      certs.pki.revoke(`${identity}-dev`, `${identity}-inter`);
      await ok(['ca', 'crl', identity, certs.pki.crl(`${identity}-inter`)]);
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
      const macs = path.join(certs.pki.dir, `${identity}.macs`);
      fs.writeFileSync(macs, '44:8a:5b:9c:70:a3\n');
      await ok(['devices', 'preregister', identity, '--macs', macs]);
      certs.pki.issue(`${identity}-upper`, root, { cn: '44:8A:5B:9C:70:A3' });
      const first = await enroll(`${identity}-upper`, []);
      expect(first.status, first.text).to.equal(200);
      expect(first.json.name).to.equal('44:8a:5b:9c:70:a3');
      certs.pki.issue(`${identity}-bare`, root, { cn: '448a5b9c70a3' });
      const second = await enroll(`${identity}-bare`, []);
      expect(second.status, second.text).to.equal(409);
      expect(second.json.code).to.equal('device_name_taken');
    });
  });
});
