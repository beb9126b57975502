import { createHmac, timingSafeEqual } from 'node:crypto';
import { AppError } from '../http/app-error.js';
import type { AuthorityRow } from './authority.repository.js';
import { caProblem, normaliseSerial } from './ca-certificates.js';
import { x509 } from './x509.js';

/** How deep a presented chain may go (leaf, intermediates) before the anchor. */
const MAX_DEPTH = 8;

export interface VerifiedChain {
  anchor: AuthorityRow;
  leaf: x509.X509Certificate;
  /** Leaf first, then the intermediates up to (not including) the anchor. */
  path: x509.X509Certificate[];
  /** (CA fingerprint, serial) pairs whose revocation must be checked against loaded CRLs. */
  revocationChecks: { issuerCaId: number | null; issuer: x509.X509Certificate; serial: string }[];
  /** `proxy`: nginx verified the intermediates it did not forward (verifyByProxyVerdict). */
  verifiedBy: 'fleetgate' | 'proxy';
}

const refuse = (status: number, code: string, message: string, details?: Record<string, unknown>) =>
  new AppError(status, code, message, details);

async function signedBy(
  cert: x509.X509Certificate,
  issuer: x509.X509Certificate,
): Promise<boolean> {
  if (cert.issuer !== issuer.subject) return false;
  try {
    return await cert.verify({ publicKey: issuer.publicKey, signatureOnly: true });
  } catch {
    return false;
  }
}

/** Signed by a certificate with the right name but the wrong key (or a broken signature). */
function namedBy(cert: x509.X509Certificate, issuer: x509.X509Certificate): boolean {
  return cert.issuer === issuer.subject;
}

/**
 * Extensions this check understands (or may ignore safely). A critical
 * extension outside this list must make the chain fail (RFC 5280 4.2):
 * nameConstraints and policyConstraints among them, which are not enforced here.
 */
const KNOWN_EXTENSIONS = new Set([
  '2.5.29.14', // subjectKeyIdentifier
  '2.5.29.15', // keyUsage
  '2.5.29.17', // subjectAltName
  '2.5.29.18', // issuerAltName
  '2.5.29.19', // basicConstraints
  '2.5.29.31', // cRLDistributionPoints
  '2.5.29.32', // certificatePolicies (no policy is required)
  '2.5.29.35', // authorityKeyIdentifier
  '2.5.29.37', // extKeyUsage
  '1.3.6.1.5.5.7.1.1', // authorityInfoAccess
]);
const NAME_CONSTRAINTS = '2.5.29.30';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';

function isSelfSigned(cert: x509.X509Certificate): boolean {
  return cert.subject === cert.issuer;
}

/**
 * Builds and checks the path from the presented leaf, through the presented
 * intermediates, to a trusted CA: signatures, validity of every certificate,
 * CA:TRUE, keyCertSign and path length of every issuer. Revocation is checked
 * by the caller against the CRLs in the database (`revocationChecks`).
 */
export async function verifyChain(
  leafDer: Buffer,
  presented: Buffer[],
  anchors: AuthorityRow[],
  now = new Date(),
): Promise<VerifiedChain> {
  const leaf = new x509.X509Certificate(new Uint8Array(leafDer));
  const intermediates = presented.map((der) => new x509.X509Certificate(new Uint8Array(der)));
  const anchorCerts = anchors.map((row) => ({
    row,
    cert: new x509.X509Certificate(row.certificate_pem),
  }));

  const path: x509.X509Certificate[] = [leaf];
  let anchor: { row: AuthorityRow; cert: x509.X509Certificate } | undefined;
  for (let depth = 0; depth < MAX_DEPTH && !anchor; depth++) {
    const current = path[path.length - 1];
    let badSignature = false;
    for (const candidate of anchorCerts) {
      if (await signedBy(current, candidate.cert)) {
        // A CA re-issued with the same name and key, trusted by two identities (stored
        // before trust refused it): the chain could go either way, so it goes nowhere.
        if (anchor && anchor.row.identity_id !== candidate.row.identity_id) {
          throw refuse(
            403,
            'chain_invalid',
            `"${current.subject}" is signed by a CA whose name and key more than one identity trusts; ` +
              'an administrator must remove one of them (fleetgate ca remove)',
            { certificate: current.subject, reason: 'ambiguous_anchor' },
          );
        }
        anchor ??= candidate;
        continue;
      }
      if (namedBy(current, candidate.cert)) badSignature = true;
    }
    if (anchor) break;
    let next: x509.X509Certificate | undefined;
    for (const candidate of intermediates) {
      if (path.some((c) => c.equal(candidate))) continue;
      if (await signedBy(current, candidate)) {
        next = candidate;
        break;
      }
      if (namedBy(current, candidate)) badSignature = true;
    }
    if (!next && badSignature) {
      throw refuse(
        403,
        'chain_invalid',
        `the signature on "${current.subject}" does not verify with the key of its issuer ` +
          `"${current.issuer}": the certificate was not signed by that CA (or was altered)`,
        { certificate: current.subject, reason: 'signature_invalid' },
      );
    }
    if (!next) {
      if (isSelfSigned(current)) {
        throw refuse(
          403,
          'ca_untrusted',
          `the certificate chain ends at "${current.subject}", a CA no identity trusts here; ` +
            'an administrator must register it first (fleetgate ca trust)',
          { root: current.subject },
        );
      }
      throw refuse(
        403,
        'chain_incomplete',
        `no trusted CA issued "${current.subject}" and the device did not send its issuer ` +
          `"${current.issuer}": send the intermediate CA certificates after the device certificate ` +
          'in the TLS handshake, or have the issuing CA trusted (fleetgate ca trust)',
        { missingIssuer: current.issuer },
      );
    }
    path.push(next);
  }
  if (!anchor) {
    throw refuse(403, 'chain_incomplete', `the certificate chain is longer than ${MAX_DEPTH}`);
  }

  checkCertificates(path, anchor.cert, now);
  // Issuers: path[1..] then the anchor. Issuer i has i intermediates below it.
  const issuers = [...path.slice(1), anchor.cert];
  issuers.forEach((issuer, index) => {
    const problem = caProblem(issuer);
    if (problem) {
      throw refuse(
        403,
        'chain_invalid',
        `"${issuer.subject}" may not issue certificates: ${problem}`,
        {
          certificate: issuer.subject,
          reason: 'not_a_ca',
        },
      );
    }
    const pathLength = issuer.getExtension(x509.BasicConstraintsExtension)?.pathLength;
    if (pathLength !== undefined && index > pathLength) {
      throw refuse(
        403,
        'chain_invalid',
        `"${issuer.subject}" allows ${pathLength} intermediate CA(s) below it, the chain has ${index}`,
        { certificate: issuer.subject, reason: 'path_length_exceeded' },
      );
    }
  });

  const revocationChecks = path.map((cert, i) => ({
    issuerCaId: i === path.length - 1 ? anchor.row.id : null,
    issuer: i === path.length - 1 ? anchor.cert : path[i + 1],
    serial: normaliseSerial(cert.serialNumber),
  }));
  return { anchor: anchor.row, leaf, path, revocationChecks, verifiedBy: 'fleetgate' };
}

/**
 * The checks on the certificates themselves, the same whether fleetgate built
 * the whole path or nginx verified the part it does not forward: validity of
 * every certificate (the anchor included), no CA leaf, no critical extension
 * left unprocessed, and TLS client authentication allowed where restricted.
 */
function checkCertificates(
  path: x509.X509Certificate[],
  anchorCert: x509.X509Certificate,
  now: Date,
): void {
  const leaf = path[0]!;
  // Validity of every certificate, the anchor included.
  for (const cert of [...path, anchorCert]) {
    if (cert.notBefore.getTime() > now.getTime() || cert.notAfter.getTime() < now.getTime()) {
      const expired = cert.notAfter.getTime() < now.getTime();
      throw refuse(
        403,
        'chain_invalid',
        `${cert === leaf ? 'the device certificate' : `the CA certificate "${cert.subject}"`} ` +
          (expired
            ? `expired on ${cert.notAfter.toISOString()}`
            : `is not valid before ${cert.notBefore.toISOString()}`),
        { certificate: cert.subject, reason: expired ? 'expired' : 'not_yet_valid' },
      );
    }
  }
  const leafBc = leaf.getExtension(x509.BasicConstraintsExtension);
  if (leafBc?.ca) {
    throw refuse(403, 'chain_invalid', 'the device certificate is a CA certificate (CA:TRUE)', {
      certificate: leaf.subject,
      reason: 'leaf_is_ca',
    });
  }
  // Critical extensions this check does not understand, on every certificate of the path;
  // nameConstraints also when not marked critical (RFC 5280 4.2.1.10 says a CA MUST mark it
  // critical, but ignoring a CA's constraints would let it vouch for names outside them).
  for (const cert of [...path, anchorCert]) {
    const unknown = cert.extensions.find(
      (e) => (e.critical || e.type === NAME_CONSTRAINTS) && !KNOWN_EXTENSIONS.has(e.type),
    );
    if (unknown) {
      throw refuse(
        403,
        'chain_invalid',
        `${cert === leaf ? 'the device certificate' : `the CA certificate "${cert.subject}"`} ` +
          `has ${unknown.critical ? 'a critical extension' : 'name constraints'} ${unknown.type} ` +
          'that fleetgate does not process, so it must refuse it',
        {
          certificate: cert.subject,
          reason: 'unknown_critical_extension',
          extension: unknown.type,
        },
      );
    }
  }
  // Extended key usage: where a certificate of the path restricts it, TLS client authentication must be allowed.
  for (const cert of path) {
    const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
    if (!eku) continue;
    const usages = eku.usages.map(String);
    if (!usages.includes(CLIENT_AUTH) && !usages.includes(ANY_EXTENDED_KEY_USAGE)) {
      throw refuse(
        403,
        'chain_invalid',
        `${cert === leaf ? 'the device certificate' : `the CA certificate "${cert.subject}"`} ` +
          'restricts its extended key usage and does not allow TLS client authentication (clientAuth)',
        { certificate: cert.subject, reason: 'wrong_extended_key_usage' },
      );
    }
  }
}

/**
 * What nginx says about the chain it verified with the CAs `fleetgate
 * nginx-config` rendered: nginx has no variable for the certificates a device
 * sends after its own, so behind it only the leaf reaches fleetgate, with this.
 */
export interface ProxyVerdict {
  /** nginx's `$ssl_client_verify`: `SUCCESS`, `FAILED:reason` or `NONE`. */
  verify: string;
  /** The trust anchors digest rendered into the configuration nginx runs with. */
  anchorsDigest: string | null;
}

/**
 * The digest `nginx-config` renders beside the CA bundle and fleetgate
 * recomputes: equal only while nginx verifies with exactly today's CAs. Keyed
 * (proxyTrustKey), so a client cannot forge it where nginx would not replace
 * the header.
 */
export function trustAnchorsDigest(key: Buffer, fingerprints: string[]): string {
  const sorted = [...new Set(fingerprints.map((f) => f.toLowerCase()))].sort();
  return createHmac('sha256', key).update(sorted.join('\n')).digest('hex');
}

/**
 * Completes what fleetgate could not check itself behind nginx: the device
 * sent an intermediate that nginx verified but did not forward. nginx's
 * verdict is believed (the caller takes it from the trusted proxy only) when
 * it was reached with today's CAs, and it is used only if it names one anchor:
 * the single registered CA that may have an intermediate below it. With two
 * or more (of one identity or of several), a chain made under another
 * identity's CA could pass for this one's, so the device is refused and its
 * intermediate must be trusted instead. The leaf and the anchor are checked
 * here as in direct mode; the unseen intermediate was checked by nginx
 * (signature, validity, CA:TRUE, keyCertSign, path length, purpose).
 */
export function verifyByProxyVerdict(
  leafDer: Buffer,
  anchors: AuthorityRow[],
  verdict: ProxyVerdict,
  /** trustAnchorsDigest of `anchors`. */
  expectedDigest: string,
  incomplete: AppError,
  now = new Date(),
): VerifiedChain {
  const leaf = new x509.X509Certificate(new Uint8Array(leafDer));
  if (verdict.verify !== 'SUCCESS') throw refusalOfVerdict(verdict.verify, incomplete);
  if (!sameDigest(verdict.anchorsDigest, expectedDigest)) {
    throw new AppError(
      503,
      'proxy_trust_stale',
      'nginx verified this chain with another set of CAs than fleetgate trusts now: ' +
        'the operator must re-render its configuration (fleetgate nginx-config) and reload nginx; retry later',
      { reason: 'proxy_trust_stale' },
      { 'Retry-After': '60' },
    );
  }
  const candidates = anchors
    .map((row) => ({ row, cert: new x509.X509Certificate(row.certificate_pem) }))
    .filter(({ cert }) => mayHaveIntermediateBelow(cert, now));
  if (candidates.length !== 1) {
    throw refuse(
      403,
      'chain_incomplete',
      `behind nginx only the device certificate reaches fleetgate; nginx verified its chain, ` +
        `but ${candidates.length} trusted CAs could have issued its intermediate "${leaf.issuer}", ` +
        'so fleetgate cannot tell which identity it belongs to: an administrator must trust ' +
        'that intermediate CA (fleetgate ca trust)',
      { missingIssuer: leaf.issuer, reason: 'proxy_anchor_ambiguous' },
    );
  }
  const anchor = candidates[0]!;
  checkCertificates([leaf], anchor.cert, now);
  return { anchor: anchor.row, leaf, path: [leaf], revocationChecks: [], verifiedBy: 'proxy' };
}

function sameDigest(forwarded: string | null, expected: string): boolean {
  if (forwarded === null || forwarded.length !== expected.length) return false;
  return timingSafeEqual(Buffer.from(forwarded), Buffer.from(expected));
}

/** A CA that OpenSSL would accept above an intermediate: valid, may sign, path length not 0. */
function mayHaveIntermediateBelow(cert: x509.X509Certificate, now: Date): boolean {
  if (cert.notBefore.getTime() > now.getTime() || cert.notAfter.getTime() < now.getTime()) {
    return false;
  }
  if (caProblem(cert)) return false;
  return cert.getExtension(x509.BasicConstraintsExtension)?.pathLength !== 0;
}

/**
 * nginx's refusal, as direct mode would word it. OpenSSL reports the last of
 * its findings; only SUCCESS is ever accepted, the reason only picks the code.
 */
function refusalOfVerdict(verify: string, incomplete: AppError): AppError {
  const reason = verify.startsWith('FAILED:') ? verify.slice('FAILED:'.length) : verify;
  if (/unable to get (local )?issuer certificate/.test(reason)) return incomplete;
  if (/self[- ]signed certificate in certificate chain/.test(reason)) {
    return refuse(
      403,
      'ca_untrusted',
      'the certificate chain ends at a root CA no identity trusts here; ' +
        'an administrator must register it first (fleetgate ca trust)',
      { reason: 'ca_untrusted', proxyVerify: reason },
    );
  }
  const expired = /has expired/.test(reason);
  if (expired || /not yet valid/.test(reason)) {
    return refuse(
      403,
      'chain_invalid',
      `a CA certificate of the chain ${expired ? 'has expired' : 'is not valid yet'} (nginx: ${reason})`,
      { reason: expired ? 'expired' : 'not_yet_valid', proxyVerify: reason },
    );
  }
  return refuse(403, 'chain_invalid', `nginx could not verify the certificate chain: ${reason}`, {
    reason: 'proxy_verify_failed',
    proxyVerify: reason,
  });
}
