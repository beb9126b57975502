import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AuthorityRow } from '../../src/authorities/authority.repository.js';
import {
  trustAnchorsDigest,
  verifyByProxyVerdict,
  verifyChain,
} from '../../src/authorities/chain.js';
import { AppError } from '../../src/http/app-error.js';
import { OpensslPki } from '../support/openssl-ca.js';

/**
 * verifyChain on its own, for the cases the TLS stack hides from the
 * end-to-end tests (test/authorities/path-validation.test.ts): OpenSSL does
 * not link an intermediate without keyCertSign to the leaf, so the app never
 * sees it there. Certificates made with the openssl CLI.
 */
describe('unit: verifyChain', () => {
  let pki: OpensslPki;
  before(() => (pki = new OpensslPki(fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-chain-')))));
  after(() => fs.rmSync(pki.dir, { recursive: true, force: true }));

  const der = (name: string) => {
    const pem = fs.readFileSync(pki.file(`${name}.crt`), 'utf8');
    return Buffer.from(pem.replace(/-----[^-]+-----|\s+/g, ''), 'base64');
  };
  const anchor = (name: string): AuthorityRow =>
    ({
      id: 1,
      identity_id: 1,
      fingerprint: '0'.repeat(64),
      certificate_pem: fs.readFileSync(pki.file(`${name}.crt`), 'utf8'),
    }) as AuthorityRow;
  async function refusal(work: Promise<unknown>): Promise<AppError> {
    try {
      await work;
    } catch (err) {
      expect(err).to.be.instanceOf(AppError);
      return err as AppError;
    }
    throw new Error('the chain was accepted');
  }

  it('accepts a sound root → intermediate → device chain', async () => {
    pki.root('ok-root');
    pki.issue('ok-inter', 'ok-root', {
      ext: 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign',
    });
    pki.issue('ok-dev', 'ok-inter');
    const verified = await verifyChain(der('ok-dev'), [der('ok-inter')], [anchor('ok-root')]);
    expect(verified.path).to.have.length(2);
  });

  it('refuses an intermediate whose keyUsage lacks keyCertSign: chain_invalid, not_a_ca', async () => {
    pki.root('ku-root');
    pki.issue('ku-inter', 'ku-root', {
      ext: 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,digitalSignature,cRLSign',
    });
    pki.issue('ku-dev', 'ku-inter');
    const err = await refusal(verifyChain(der('ku-dev'), [der('ku-inter')], [anchor('ku-root')]));
    expect(err.status).to.equal(403);
    expect(err.code).to.equal('chain_invalid');
    expect(err.details).to.include({ reason: 'not_a_ca' });
    expect(err.message).to.contain('keyCertSign');
  });

  it('refuses a device certificate signed by another key under its issuer’s name: signature_invalid', async () => {
    pki.root('sig-root');
    pki.root('sig-impostor', undefined, 'sig-root');
    pki.issue('sig-dev', 'sig-impostor');
    const err = await refusal(verifyChain(der('sig-dev'), [], [anchor('sig-root')]));
    expect(err.code).to.equal('chain_invalid');
    expect(err.details).to.include({ reason: 'signature_invalid' });
  });

  // Go crypto/x509 TestPathBuilding (re-issued roots): two certificates of one CA
  // (same name and key) stored as anchors of two identities, as databases from
  // before the trust-time check may hold. The chain must not pick one silently.
  it('refuses a chain whose issuer is an anchor of two identities under two certificates: ambiguous_anchor', async () => {
    pki.root('twin-root');
    pki.reissueRoot('twin-root', 'twin-again', { serial: 7, days: 99 });
    pki.issue('twin-dev', 'twin-root');
    const first = anchor('twin-root');
    const second = { ...anchor('twin-again'), id: 2, identity_id: 2 } as AuthorityRow;
    const err = await refusal(verifyChain(der('twin-dev'), [], [first, second]));
    expect(err.code).to.equal('chain_invalid');
    expect(err.details).to.include({ reason: 'ambiguous_anchor' });
    // Both certificates with one identity: a renewal, the chain is fine.
    const renewed = { ...second, identity_id: 1 } as AuthorityRow;
    const verified = await verifyChain(der('twin-dev'), [], [first, renewed]);
    expect(verified.anchor.identity_id).to.equal(1);
  });

  describe("nginx's verdict on an intermediate fleetgate did not see", () => {
    const INTER =
      'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign';
    const row = (name: string, id: number): AuthorityRow => ({
      ...anchor(name),
      id,
      identity_id: id,
      fingerprint: String(id).repeat(64).slice(0, 64),
    });
    const incomplete = new AppError(403, 'chain_incomplete', 'no issuer', { missingIssuer: 'x' });
    const key = Buffer.alloc(32, 7);
    const digestOf = (rows: AuthorityRow[]) =>
      trustAnchorsDigest(
        key,
        rows.map((r) => r.fingerprint),
      );
    const verdictOn = (rows: AuthorityRow[], verify = 'SUCCESS') =>
      verifyByProxyVerdict(
        der('pv-dev'),
        rows,
        { verify, anchorsDigest: digestOf(rows) },
        digestOf(rows),
        incomplete,
      );
    const codeOf = (work: () => unknown) => {
      try {
        work();
      } catch (err) {
        return (err as AppError).code + ':' + String((err as AppError).details?.reason);
      }
      return 'accepted';
    };

    before(() => {
      pki.root('pv-root');
      pki.root('pv-other');
      pki.root(
        'pv-factory',
        'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign',
      );
      pki.issue('pv-inter', 'pv-root', { ext: INTER });
      pki.issue('pv-dev', 'pv-inter');
    });

    it('takes the one CA that may stand above an intermediate as the anchor; factory CAs (pathlen 0) do not count', () => {
      const rows = [row('pv-root', 1), row('pv-factory', 2)];
      const verified = verdictOn(rows);
      expect(verified.anchor.id).to.equal(1);
      expect(verified.verifiedBy).to.equal('proxy');
      expect(verified.revocationChecks).to.deep.equal([]);
    });

    it('refuses when two CAs could be the anchor, a stale digest, and any verdict but SUCCESS', () => {
      expect(codeOf(() => verdictOn([row('pv-root', 1), row('pv-other', 3)]))).to.equal(
        'chain_incomplete:proxy_anchor_ambiguous',
      );
      const rows = [row('pv-root', 1)];
      expect(
        codeOf(() =>
          verifyByProxyVerdict(
            der('pv-dev'),
            rows,
            { verify: 'SUCCESS', anchorsDigest: digestOf([...rows, row('pv-other', 3)]) },
            digestOf(rows),
            incomplete,
          ),
        ),
      ).to.equal('proxy_trust_stale:proxy_trust_stale');
      expect(
        codeOf(() =>
          verifyByProxyVerdict(
            der('pv-dev'),
            rows,
            { verify: 'SUCCESS', anchorsDigest: null },
            digestOf(rows),
            incomplete,
          ),
        ),
      ).to.equal('proxy_trust_stale:proxy_trust_stale');
      const unkeyed = trustAnchorsDigest(Buffer.alloc(32), ['1'.repeat(64)]);
      expect(
        codeOf(() =>
          verifyByProxyVerdict(
            der('pv-dev'),
            rows,
            { verify: 'SUCCESS', anchorsDigest: unkeyed },
            digestOf(rows),
            incomplete,
          ),
        ),
      ).to.equal('proxy_trust_stale:proxy_trust_stale');
      expect(codeOf(() => verdictOn(rows, 'NONE'))).to.equal('chain_invalid:proxy_verify_failed');
      expect(
        codeOf(() => verdictOn(rows, 'FAILED:unable to get local issuer certificate')),
      ).to.equal('chain_incomplete:undefined');
      expect(
        codeOf(() => verdictOn(rows, 'FAILED:self-signed certificate in certificate chain')),
      ).to.equal('ca_untrusted:ca_untrusted');
      expect(codeOf(() => verdictOn(rows, 'FAILED:certificate has expired'))).to.equal(
        'chain_invalid:expired',
      );
    });
  });
});
